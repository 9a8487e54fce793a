"""Which paths an export may write: never an input, never inside an input folder, never a device.

Outputs replace whatever is at their final name when they are complete, so the name is checked
before anything runs: a path that is one of the inputs, lies inside an input folder (the next
run would read it back as a frame) or matches an input frame pattern is refused; so is anything
that exists but is not a regular file (``/dev/null``, a named pipe, a socket), which a rename
would silently replace with a file.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from polypvision.errors import OutputError

_PATTERN = re.compile(r"%0?(\d*)d")
_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def _resolved(p: Path) -> Path:
    try:
        return p.resolve()
    except OSError:
        return p.absolute()


def _pattern_regex(pattern: Path) -> re.Pattern[str] | None:
    m = _PATTERN.search(pattern.name)
    if m is None:
        return None
    name = pattern.name
    return re.compile(
        "^" + re.escape(name[: m.start()]) + r"\d+" + re.escape(name[m.end() :]) + "$"
    )


def claims(inp: Path, path: Path) -> bool:
    """True when writing ``path`` would touch the input ``inp``: the same file (also through a
    link), a file inside the input folder, or a name the input frame pattern matches."""
    target = _resolved(path)
    if inp.is_dir():
        root = _resolved(inp)
        return target == root or root in target.parents
    if inp.exists():
        try:
            return target == _resolved(inp) or (path.exists() and os.path.samefile(path, inp))
        except OSError:
            return False
    rx = _pattern_regex(inp)
    if rx is not None:  # frames/%04d.png: the input is every file the pattern matches
        return _resolved(inp.parent) == target.parent and rx.match(target.name) is not None
    return target == _resolved(inp)


def not_regular(path: Path) -> str | None:
    """What ``path`` is when it exists and is not a regular file (links followed), else None."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if stat.S_ISREG(mode):
        return None
    for test, word in _KINDS:
        if test(mode):
            return word
    return "not a regular file"


def check_output_path(path: Path, inputs: Iterable[Path] = (), *, what: str = "output") -> Path:
    """Refuse an output that would overwrite or sit inside an input, that is not a regular file,
    or whose folder is missing or read-only. Returns the path."""
    path = Path(path)
    for inp in inputs:
        if inp is not None and claims(Path(inp), path):
            same = _resolved(path) == _resolved(Path(inp))
            raise OutputError(
                f"{what} {path} is the input itself; choose another output path"
                if same
                else f"{what} {path} would overwrite an input ({inp}); write outside the input "
                "folder"
            )
    kind = not_regular(path)
    if kind == "a folder":
        raise OutputError(
            f"{what} {path} is a folder; give a file name such as {path / 'annotated.mp4'}"
        )
    if kind is not None:
        raise OutputError(f"{what} {path} is {kind}, not a regular file; give a new file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{what} folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{what} folder {parent} is not writable; choose another output path")
    return path
