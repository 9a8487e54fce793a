"""Find the procedures of an archive: a folder searched recursively, or a text file listing them.

A procedure is one video file, or one folder that holds image frames. Its outputs go under
OUTPUT_DIR at the same relative path as the source (``a/b/case.mp4`` -> ``a/b/case.*``), so a
run over a hospital's folder tree gives back the same tree. Nothing here opens a video: a
source that turns out to be unreadable fails in its own job and is reported there, never
stopping the discovery of the others.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from polypvision.errors import UserError
from polypvision.sources.frames import IMAGE_EXTS

VIDEO_EXTS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".avi",
        ".mkv",
        ".webm",
        ".wmv",
        ".mpg",
        ".mpeg",
        ".ts",
        ".mts",
        ".m2ts",
        ".flv",
        ".3gp",
    }
)
LIST_EXTS = frozenset({".txt", ".lst", ".list"})


@dataclass(frozen=True)
class Procedure:
    """One source and where its outputs go (relative to OUTPUT_DIR, without a suffix)."""

    id: int
    source: str
    out_rel: PurePosixPath
    label: str  # the source as the user will recognise it in the summary (relative to INPUT)


def _has_images(names: list[str]) -> bool:
    return any(Path(n).suffix.lower() in IMAGE_EXTS for n in names if not n.startswith("."))


def _walk(root: Path, skip: Path | None) -> list[Path]:
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and (skip is None or (here / d).resolve() != skip)
        )
        files.sort()
        if _has_images(files):
            found.append(here)
        found.extend(
            here / f
            for f in files
            if not f.startswith(".") and Path(f).suffix.lower() in VIDEO_EXTS
        )
    return found


def _read_list(path: Path) -> list[Path]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(
            f"cannot read the list of sources {path}: {exc}; give a folder or a UTF-8 text "
            "file with one video or frame folder per line"
        ) from None
    out, seen = [], set()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line).expanduser()
        p = p if p.is_absolute() else path.parent / p
        key = os.path.normpath(p)
        if key not in seen:
            seen.add(key)
            out.append(Path(key))
    return out


def _stem(p: Path, is_dir: bool) -> str:
    return p.name if is_dir else p.stem


def _relative(sources: list[Path], base: Path) -> list[tuple[PurePosixPath, bool]]:
    rels = []
    for s in sources:
        is_dir = s.is_dir()
        try:
            rel = s.relative_to(base)
        except ValueError:
            rel = Path(s.name)
        if str(rel) in ("", "."):
            rel = Path(s.resolve().name or "procedure")
        rels.append((PurePosixPath(*rel.parent.parts, _stem(rel, is_dir)), is_dir))
    return rels


def _disambiguate(
    sources: list[Path], rels: list[tuple[PurePosixPath, bool]]
) -> list[PurePosixPath]:
    """``case.mp4`` beside ``case.avi`` (or a frame folder ``case/``) would share outputs:
    name them apart."""
    counts = Counter(r for r, _ in rels)
    out: list[PurePosixPath] = []
    taken: set[PurePosixPath] = set()
    for src, (rel, is_dir) in zip(sources, rels):
        if counts[rel] > 1 and not is_dir:
            rel = rel.with_name(f"{rel.name}_{src.suffix.lstrip('.').lower()}")
        base, n = rel, 2
        while rel in taken:
            rel = base.with_name(f"{base.name}_{n}")
            n += 1
        taken.add(rel)
        out.append(rel)
    return out


def discover(input_path: Path, output_dir: Path | None = None) -> list[Procedure]:
    """The procedures under a folder (recursively) or named by a list file, in a stable order."""
    input_path = Path(input_path)
    if not input_path.exists():
        raise UserError(
            f"input not found: {input_path}; give a folder of procedures or a text file listing "
            "them"
        )
    skip = output_dir.resolve() if output_dir is not None else None
    if input_path.is_dir():
        sources = _walk(input_path, skip)
        base = input_path
    elif input_path.suffix.lower() in VIDEO_EXTS:
        sources, base = [input_path], input_path.parent
    else:
        sources = _read_list(input_path)
        parents = [s.parent for s in sources]
        base = Path(os.path.commonpath(parents)) if parents else input_path.parent
    if not sources:
        raise UserError(
            f"no videos or frame folders found in {input_path}; videos are recognised by their "
            f"extension ({', '.join(sorted(VIDEO_EXTS))})"
        )
    rels = _disambiguate(sources, _relative(sources, base))
    labels = []
    for s in sources:
        try:
            labels.append(s.relative_to(base).as_posix() if input_path.is_dir() else str(s))
        except ValueError:
            labels.append(str(s))
    return [
        Procedure(i, str(s), r, lab if lab not in ("", ".") else str(s))
        for i, (s, r, lab) in enumerate(zip(sources, rels, labels))
    ]
