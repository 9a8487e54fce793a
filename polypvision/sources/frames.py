"""A folder of frames, or a printf pattern such as ``frames/%d.png``, played as a clip.

This is how datasets such as CVC-ClinicDB come. Files are ordered by natural numeric order
(2.png before 10.png); non-image files are skipped and counted; an unreadable image is
skipped with a warning rather than ending the clip.

What a folder can hold that a video cannot, and what happens to it (each reported in the
export's summary and sidecar, see :meth:`FrameFolderSource.facts`):

- frames of several sizes: the clip's size is the size most frames have (read from the file
  headers at open); the video writer letterboxes the others into it, masks keep each frame's
  own size;
- two files with one stem (``1.png`` and ``1.jpg``): both are frames, and their names (masks,
  log) carry the extension (``1_png``, ``1_jpg``) so neither mask replaces the other;
- numbered frames with gaps (``1.png, 2.png, 5.png``): the frames play one interval apart, as
  always (a folder may be a selection of frames, not a recording), and the missing numbers are
  reported; the log's ``name`` carries each frame's own number.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import cv2

from polypvision.errors import SourceError
from polypvision.model.processing import to_bgr
from polypvision.sources.base import FrameSource, now
from polypvision.sources.file import check_input_file
from polypvision.sources.imagesize import image_size
from polypvision.types import Frame, SourceInfo

log = logging.getLogger(__name__)

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
_NUM = re.compile(r"(\d+)")
_TRAILING_NUM = re.compile(r"^(.*?)(\d+)$")
_PATTERN_FIELD = re.compile(r"%0?(\d*)d")


def natural_key(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in _NUM.split(name)]


def _expand_pattern(pattern: str) -> list[Path]:
    """Files matching a printf pattern (``%d``, ``%04d``), in numeric order."""
    p = Path(pattern)
    m = _PATTERN_FIELD.search(p.name)
    if m is None:
        raise SourceError(f"frame pattern {pattern} has no %d field; use e.g. frames/%d.png")
    folder = p.parent
    if not folder.is_dir():
        raise SourceError(f"input not found: {folder} (from the pattern {pattern}); check the path")
    rx = re.compile(
        "^" + re.escape(p.name[: m.start()]) + r"(\d+)" + re.escape(p.name[m.end() :]) + "$"
    )
    hits = []
    for entry in os.scandir(folder):
        mm = rx.match(entry.name)
        if mm and entry.is_file():
            hits.append((int(mm.group(1)), Path(entry.path)))
    return [path for _, path in sorted(hits)]


def is_frame_pattern(spec: str) -> bool:
    """A printf frame pattern (``frames/%04d.png``); an existing file is never one, whatever
    its name (a video called ``50%done.mp4`` is a video)."""
    return _PATTERN_FIELD.search(Path(spec).name) is not None and not Path(spec).exists()


def _numbers(files: list[Path]) -> list[int] | None:
    """Each file's frame number, when every name is PREFIX + number + .EXT with one prefix and
    one extension and no number twice; else None (the files are then timed by their order)."""
    nums, shape = [], None
    for f in files:
        m = _TRAILING_NUM.match(f.stem)
        if m is None:
            return None
        key = (m.group(1), f.suffix.lower())
        if shape is None:
            shape = key
        elif key != shape:
            return None
        nums.append(int(m.group(2)))
    return nums if len(set(nums)) == len(nums) else None


def _ranges(missing: list[int]) -> list[str]:
    out: list[str] = []
    start: int | None = None
    prev: int | None = None
    for n in [*missing, None]:
        if start is not None and prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = n
    return out


class FrameFolderSource(FrameSource):
    """Still images played as a video at ``fps``."""

    def __init__(self, spec: str | os.PathLike[str], fps: float = 25.0) -> None:
        super().__init__()
        self.spec = str(spec)
        self.fps = float(fps)
        self.files: list[Path] = []
        self.names: list[str] = []  # each frame's name (masks, log): the stem, made unique
        self.skipped_files: list[str] = []
        self._facts: dict[str, Any] = {}
        self._bad: set[str] = (
            set()
        )  # unreadable files, counted once however often seek revisits them
        self._pos = 0
        self._index = 0
        self._open = False

    def _list(self) -> list[Path]:
        if _PATTERN_FIELD.search(Path(self.spec).name) and not Path(self.spec).is_dir():
            return _expand_pattern(self.spec)
        folder = Path(self.spec)
        check_input_file(folder)
        files = []
        for entry in os.scandir(folder):
            if not entry.is_file():
                continue
            if Path(entry.name).suffix.lower() in IMAGE_EXTS:
                files.append(Path(entry.path))
            elif not entry.name.startswith("."):
                self.skipped_files.append(entry.name)
        files.sort(key=lambda p: natural_key(p.name))
        return files

    def open(self) -> SourceInfo:
        if not self.fps > 0 or self.fps == float("inf"):
            raise SourceError(
                f"frame rate must be a positive number, got {self.fps}; pass --fps 25 for example"
            )
        self.files = self._list()
        if not self.files:
            raise SourceError(
                f"no image frames found in {self.spec}; expected .png/.jpg/.tif files"
            )
        if self.skipped_files:
            self.warnings.append(
                f"skipped {len(self.skipped_files)} non-image file(s) in {self.spec}"
            )
        self._name_frames()
        self._find_gaps()
        sizes = Counter(s for s in (image_size(p) for p in self.files) if s is not None)
        if not sizes or not any(
            cv2.imread(str(p), cv2.IMREAD_UNCHANGED) is not None for p in self.files
        ):
            raise SourceError(
                f"none of the {len(self.files)} image files in {self.spec} can be decoded"
            )
        # The most common size (the larger one on a tie): a stray thumbnail sets nothing.
        (w, h), _ = max(sizes.items(), key=lambda kv: (kv[1], kv[0][0] * kv[0][1]))
        if len(sizes) > 1:
            self._facts["frame_sizes_in_input"] = {
                f"{a}x{b}": n for (a, b), n in sizes.most_common()
            }
            self.warnings.append(
                f"frames of {len(sizes)} sizes in {self.spec}: the video is {w}x{h}, "
                f"{sum(sizes.values()) - sizes[(w, h)]} frame(s) of other sizes are letterboxed "
                "into it (aspect ratio kept; masks at each frame's own size)"
            )
        self._open = True
        self.info = SourceInfo(
            description=self.spec,
            width=w,
            height=h,
            fps=self.fps,
            frame_count=len(self.files),
            live=False,
            seekable=True,
        )
        return self.info

    def _name_frames(self) -> None:
        stems: dict[str, list[Path]] = defaultdict(list)
        for p in self.files:
            stems[p.stem].append(p)
        shared = {s: ps for s, ps in stems.items() if len(ps) > 1}
        self.names = [
            f"{p.stem}_{p.suffix.lstrip('.').lower()}" if p.stem in shared else p.stem
            for p in self.files
        ]
        if shared:
            example = sorted(shared)[0]
            files = ", ".join(p.name for p in shared[example])
            self._facts["shared_stems"] = {
                s: [p.name for p in ps] for s, ps in sorted(shared.items())
            }
            self.warnings.append(
                f"{sum(len(v) for v in shared.values())} files share a name with another "
                f"({files}): each is a frame, named with its extension ({example}_...)"
            )

    def _find_gaps(self) -> None:
        nums = _numbers(self.files)
        if nums is None:
            return
        have = set(nums)
        missing = [n for n in range(nums[0], nums[-1] + 1) if n not in have]
        if missing:
            ranges = _ranges(missing)
            self._facts["numbering_gaps"] = {
                "missing": len(missing),
                "numbers": ranges[:50],
                "timing": "frames play one interval apart; the log's name is the number",
            }
            self.warnings.append(
                f"{len(missing)} frame number(s) missing in {self.spec} "
                f"({', '.join(ranges[:5])}{', ...' if len(ranges) > 5 else ''}): the frames "
                "that are there play one interval apart"
            )

    def expected_frames(self) -> int | None:
        return len(self.files) or None

    def facts(self) -> dict[str, Any]:
        return dict(self._facts)

    def read(self) -> Frame | None:
        while self._open and self._pos < len(self.files):
            i = self._pos
            path = self.files[i]
            self._pos += 1
            img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if img is None:
                self._skip(path)
                continue
            try:
                bgr = to_bgr(img)
            except ValueError:
                self._skip(path)
                continue
            frame = Frame(self._index, bgr, now(), self._index / self.fps, name=self.names[i])
            self._index += 1
            return frame
        return None

    def _skip(self, path: Path) -> None:
        if path.name not in self._bad:
            self._bad.add(path.name)
            self.unreadable += 1
            self.warnings.append(f"unreadable frame skipped: {path.name}")
            log.info("unreadable frame skipped: %s", path)  # shown by the caller, once

    def seek(self, index: int) -> None:
        index = min(max(0, int(index)), len(self.files))
        self._pos = index
        self._index = index

    def close(self) -> None:
        self._open = False
