"""The frame-source interface: open / read / close, yielding :class:`Frame` objects.

Sources normalise every frame to BGR uint8 HxWx3 once, here at the edge, and number frames
from 0 in the order they were decoded. File-like sources are seekable and never drop frames;
live sources (capture devices, network streams) hand out the newest frame and count the
stale ones they dropped.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any

from polypvision.types import Frame, SourceInfo


class FrameSource(ABC):
    """Base class. Use as a context manager or call open() / close() explicitly."""

    live: bool = False

    def __init__(self) -> None:
        self.info: SourceInfo | None = None
        self.dropped = 0  # frames discarded because a newer one arrived (live sources)
        self.unreadable = 0  # frames or files that could not be decoded and were skipped
        self.warnings: list[str] = []

    @abstractmethod
    def open(self) -> SourceInfo:
        """Open the source and return what it actually granted. Raises SourceError."""

    @abstractmethod
    def read(self) -> Frame | None:
        """Return the next frame, or None at the end of the source (or after close())."""

    @abstractmethod
    def close(self) -> None:
        """Release the source. Safe to call twice and from another thread."""

    # Seekable sources override these.
    def seek(self, index: int) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot seek")

    @property
    def status(self) -> str:
        """One word for the UI: 'ok', 'signal lost', 'reconnecting', 'ended'."""
        return "ok"

    def expected_frames(self) -> int | None:
        """How many frames the input says it has, when it says so exactly (a video's index, the
        files of a folder); fewer frames out than this is a partial export."""
        return None

    def facts(self) -> dict[str, Any]:
        """What the export's summary and sidecar report about the input beyond its frame count
        (variable frame rate, pixel aspect ratio, gaps in numbering, duplicate names)."""
        return {}

    def stats(self) -> dict[str, Any]:
        return {"dropped": self.dropped, "unreadable": self.unreadable}

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self):
        while (frame := self.read()) is not None:
            yield frame


def now() -> float:
    return time.perf_counter()
