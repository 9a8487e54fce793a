"""Recorded video files, decoded by OpenCV's FFmpeg backend."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2

from polypvision.errors import SourceError
from polypvision.model.processing import to_bgr
from polypvision.sources.base import FrameSource, now
from polypvision.types import Frame, SourceInfo

log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0


def check_input_file(path: Path) -> None:
    """Clear errors for the common ways a path is not a readable file."""
    if not path.exists():
        raise SourceError(f"input not found: {path}; check the path")
    if path.is_dir():
        return
    if not os.access(path, os.R_OK):
        raise SourceError(f"input is not readable: {path}; check its permissions")
    if path.stat().st_size == 0:
        raise SourceError(f"input file is empty (0 bytes): {path}; it is not a video")


# FFmpeg demuxers that "decode" things that are not videos (a text file becomes ANSI art).
_NOT_VIDEO_FORMATS = {"tty", "txt"}


def _probe_not_video(path: Path) -> str | None:
    """Ask PyAV's FFmpeg what the container is; a reason string if it is not a video."""
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(str(path)) as container:
            if container.format.name in _NOT_VIDEO_FORMATS:
                return f"it is a {container.format.long_name or container.format.name} file"
            if not container.streams.video:
                return "it has no video stream"
    except Exception:  # PyAV's own verdict is only advisory; OpenCV decides below
        return None
    return None


class VideoFileSource(FrameSource):
    """A video file. Every decodable frame, in order; a truncated file ends early with a warning."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self._cap: cv2.VideoCapture | None = None
        self._next = 0
        self._first: object = None
        self._expected: int | None = None

    def open(self) -> SourceInfo:
        check_input_file(self.path)
        why = _probe_not_video(self.path)
        if why is not None:
            raise SourceError(f"cannot decode {self.path}: not a video ({why}); pass a video file or a folder of frames")
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot decode {self.path}: not a video file OpenCV/FFmpeg can read")
        ok, img = cap.read()
        if not ok or img is None:
            cap.release()
            raise SourceError(f"cannot decode any frame of {self.path}: the file is damaged or not a video")
        self._cap = cap
        self._first = img
        fps = cap.get(cv2.CAP_PROP_FPS)
        fps = fps if fps and 1.0 <= fps <= 1000.0 else DEFAULT_FPS
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._expected = count if count > 0 else None
        h, w = img.shape[:2]
        self.info = SourceInfo(description=str(self.path), width=w, height=h, fps=float(fps),
                               frame_count=self._expected, live=False, seekable=True)
        return self.info

    def read(self) -> Frame | None:
        cap = self._cap
        if cap is None:
            return None
        if self._first is not None:
            img, self._first = self._first, None
        else:
            ok, img = cap.read()
            if not ok or img is None:
                self._end_check()
                return None
        pts_s = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        frame = Frame(self._next, to_bgr(img), now(), pts_s)
        self._next += 1
        return frame

    def _end_check(self) -> None:
        exp = self._expected
        if exp is not None and self._next < exp - 1 and not self.warnings:
            msg = (f"{self.path.name}: decoded {self._next} of {exp} frames the header announces; "
                   "the file looks truncated or damaged")
            self.unreadable = exp - self._next
            self.warnings.append(msg)
            log.info(msg)  # a warning for the caller to show (self.warnings), once

    def seek(self, index: int) -> None:
        if self._cap is None:
            raise SourceError("seek on a closed source")
        index = max(0, int(index))
        self._first = None
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        self._next = index

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
