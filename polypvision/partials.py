"""Temporary outputs beside their destination, locked while written, and the sweep that finds
what a killed run left behind.

Every output is written under a hidden temporary name in its destination's folder
(``.NAME.XXXXXXXX.partial.EXT``) and renamed into place when complete, so the rename is atomic
and a failure never leaves a half file under the final name. A run that is killed (SIGKILL, an
out-of-memory kill, a power cut) cannot remove its temporary files, so the writer holds an
advisory lock on each of them for as long as it lives: the kernel drops the lock when the
process dies, which is how the next run writing to the same folder tells a dead run's litter
from a live run's work in progress (a process id could have been reused; a lock cannot lie).
That next run salvages an interrupted recording (a fragmented MP4 is playable up to its last
complete fragment) under a visible name and removes the rest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so no sweeping (leftovers are only reported)
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

SUFFIX = ".partial"
# mkstemp/mkdtemp add eight characters from this alphabet.
PARTIAL_NAME = re.compile(
    r"^\.(?P<final>.+)\.(?P<token>[a-z0-9_]{8})\.partial(?P<ext>\.[A-Za-z0-9]+)?$"
)
OLD_NAME = re.compile(r"^\.(?P<final>.+)\.old$")
# A temporary file younger than this is left alone even when unlocked: its writer may be
# between creating it and locking it.
MIN_AGE_S = 2.0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


def _lock(fd: int) -> bool:
    """Take the advisory lock on ``fd`` without waiting; True when it is ours."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


class Partial:
    """A hidden temporary file (or folder) beside ``final``, locked for as long as it is open."""

    def __init__(self, final: Path, suffix: str = "", *, folder: bool = False) -> None:
        self.final = Path(final)
        parent = self.final.parent if str(self.final.parent) else Path(".")
        prefix = f".{self.final.name}."
        self.folder = folder
        self._fd: int | None = None
        if folder:
            self.path = Path(tempfile.mkdtemp(prefix=prefix, suffix=SUFFIX, dir=parent))
        else:
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=SUFFIX + suffix, dir=parent)
            self.path, self._fd = Path(name), fd
        # From here on the temporary exists and no caller holds this object yet to remove it:
        # anything raised before __init__ returns (a Ctrl-C or SIGTERM's KeyboardInterrupt
        # included) removes it here.
        try:
            if folder:
                os.chmod(self.path, DIR_MODE)  # mkdtemp makes 0700; outputs get the usual modes
                # A folder is locked through a descriptor of its own (not possible on Windows).
                if fcntl is not None:
                    self._fd = os.open(self.path, os.O_RDONLY)
            else:
                os.chmod(self.path, FILE_MODE)  # mkstemp makes 0600
            if self._fd is not None:
                _lock(self._fd)
        except BaseException:
            self.discard()
            raise

    def release(self) -> None:
        """Drop the lock (the kernel would at exit); the path itself is left as it is."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def discard(self) -> None:
        """Remove the temporary output; safe to call twice."""
        if self.folder:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
        self.release()

    def publish(self, final: Path | None = None) -> Path:
        """Rename into place (atomic within one folder); the lock goes with it."""
        target = Path(final) if final is not None else self.final
        os.replace(self.path, target)
        self.release()
        return target


def _unlocked(path: Path) -> bool:
    """True when nobody holds ``path``'s lock: the run that wrote it has ended."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return _lock(fd)
    finally:
        os.close(fd)


def free_name(final: Path, tag: str = "recovered") -> Path:
    """``final`` itself if nothing is there, else ``STEM-TAG[-N].EXT``: never an existing name."""
    if not final.exists():
        return final
    for n in range(1, 10000):
        cand = final.with_name(f"{final.stem}-{tag}{'' if n == 1 else f'-{n}'}{final.suffix}")
        if not cand.exists():
            return cand
    raise FileExistsError(final)


def _sweep_one(entry: os.DirEntry, folder: Path) -> str | None:
    m = PARTIAL_NAME.match(entry.name)
    if m is None:
        return None
    path = Path(entry.path)
    if not _unlocked(path):
        return None  # a live run is writing it
    if entry.is_file(follow_symlinks=False) and (m.group("ext") or "").lower() in (
        ".mp4",
        ".m4v",
        ".mov",
    ):
        from polypvision.fmp4 import salvage

        seconds = salvage(path)
        if seconds is not None:
            target = free_name(folder / m.group("final"))
            os.replace(path, target)
            return f"recovered {seconds:.1f} s of an interrupted recording as {target}"
    if entry.is_dir(follow_symlinks=False):
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    return f"removed {entry.name}, left in {folder} by an interrupted run"


def _restore_old(entry: os.DirEntry, folder: Path) -> str | None:
    """A masks folder moved aside to ``.NAME.old`` by a run killed before the new one took its
    place is the only copy of those masks: put it back (or remove it once the new one is there)."""
    m = OLD_NAME.match(entry.name)
    if m is None or not entry.is_dir(follow_symlinks=False):
        return None
    final = folder / m.group("final")
    if final.exists():
        shutil.rmtree(entry.path, ignore_errors=True)
        return None
    os.replace(entry.path, final)
    return f"restored {final}, moved aside by an interrupted run"


def sweep(folder: Path, min_age_s: float = MIN_AGE_S) -> list[str]:
    """Clean up after killed runs in ``folder``; one message per thing done (for the user).

    Temporary outputs whose lock is free belong to a run that has ended without cleaning up:
    an interrupted recording is salvaged under a visible name, anything else is removed.
    Without advisory locks (Windows) nothing can be told apart, so nothing is touched.
    """
    folder = Path(folder) if str(folder) else Path(".")
    if fcntl is None or not folder.is_dir():
        return []
    done = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith("."):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < min_age_s:
                continue
            msg = _sweep_one(entry, folder) or _restore_old(entry, folder)
        except OSError as exc:
            log.info("could not clean up %s: %s", entry.path, exc)
            continue
        if msg:
            # What a killed run's recording became is news for the user, not only for -v.
            log.log(
                logging.WARNING if msg.startswith(("recovered", "restored")) else logging.INFO,
                "%s",
                msg,
            )
            done.append(msg)
    return done
