"""A folder of frames, or a printf pattern such as ``frames/%d.png``, played as a clip.

This is how datasets such as CVC-ClinicDB come. Files are ordered by natural numeric order
(2.png before 10.png); non-image files are skipped and counted; an unreadable image is
skipped with a warning rather than ending the clip.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import cv2

from polypvision.errors import SourceError
from polypvision.model.processing import to_bgr
from polypvision.sources.base import FrameSource, now
from polypvision.sources.file import check_input_file
from polypvision.types import Frame, SourceInfo

log = logging.getLogger(__name__)

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
_NUM = re.compile(r"(\d+)")


def natural_key(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in _NUM.split(name)]


def _expand_pattern(pattern: str) -> list[Path]:
    """Files matching a printf pattern (``%d``, ``%04d``), in numeric order."""
    p = Path(pattern)
    m = re.search(r"%0?(\d*)d", p.name)
    if m is None:
        raise SourceError(f"frame pattern {pattern} has no %d field; use e.g. frames/%d.png")
    folder = p.parent
    if not folder.is_dir():
        raise SourceError(f"input not found: {folder} (from the pattern {pattern}); check the path")
    rx = re.compile("^" + re.escape(p.name[: m.start()]) + r"(\d+)" + re.escape(p.name[m.end():]) + "$")
    hits = []
    for entry in os.scandir(folder):
        mm = rx.match(entry.name)
        if mm and entry.is_file():
            hits.append((int(mm.group(1)), Path(entry.path)))
    return [path for _, path in sorted(hits)]


def is_frame_pattern(spec: str) -> bool:
    return re.search(r"%0?\d*d", Path(spec).name) is not None


class FrameFolderSource(FrameSource):
    """Still images played as a video at ``fps``."""

    def __init__(self, spec: str | os.PathLike[str], fps: float = 25.0) -> None:
        super().__init__()
        self.spec = str(spec)
        self.fps = float(fps)
        self.files: list[Path] = []
        self.skipped_files: list[str] = []
        self._bad: set[str] = set()  # unreadable files, counted once however often seek revisits them
        self._pos = 0
        self._index = 0
        self._open = False

    def _list(self) -> list[Path]:
        if is_frame_pattern(self.spec):
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
        if self.fps <= 0:
            raise SourceError(f"frame rate must be positive, got {self.fps}; pass --fps 25 for example")
        self.files = self._list()
        if not self.files:
            raise SourceError(f"no image frames found in {self.spec}; expected .png/.jpg/.tif files")
        if self.skipped_files:
            self.warnings.append(f"skipped {len(self.skipped_files)} non-image file(s) in {self.spec}")
        first = None
        for path in self.files:
            first = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if first is not None:
                break
        if first is None:
            raise SourceError(f"none of the {len(self.files)} image files in {self.spec} can be decoded")
        h, w = first.shape[:2]
        self._open = True
        self.info = SourceInfo(description=self.spec, width=w, height=h, fps=self.fps,
                               frame_count=len(self.files), live=False, seekable=True)
        return self.info

    def read(self) -> Frame | None:
        while self._open and self._pos < len(self.files):
            path = self.files[self._pos]
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
            frame = Frame(self._index, bgr, now(), self._index / self.fps, name=path.stem)
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
