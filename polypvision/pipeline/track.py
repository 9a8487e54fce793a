"""Per-frame verdicts of a seekable clip: the detection timeline under the seek bar.

A sink like any other: the live view writes each model result into it (the timeline fills as
the clip plays) and a clip scan runs the offline schedule with it as the only sink. Written
by one worker at a time (one byte per frame: a store is atomic enough, and a stale read only
delays a mark by one repaint), read by the window.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from polypvision.types import FrameResult

UNKNOWN, CLEAR, POLYP = 0, 1, 2


class DetectionTrack:
    name = "timeline"
    needs_image = False

    def __init__(self, frame_count: int) -> None:
        self.state = np.zeros(max(frame_count, 0), np.uint8)
        self.version = 0

    def __len__(self) -> int:
        return len(self.state)

    def write(self, result: FrameResult) -> None:
        i = result.index
        if 0 <= i < len(self.state):
            self.state[i] = POLYP if result.detection.present else CLEAR
            self.version += 1

    mark = write

    def prepare(self, summary: dict[str, Any]) -> None:
        """Marks are live from the first frame: nothing to complete."""

    def publish(self) -> None:
        return None

    def abort(self) -> None:
        """A cancelled scan keeps the marks it made: each one is a real verdict."""

    def runs(self, value: int = POLYP) -> list[tuple[int, int]]:
        """[start, end) runs of frames with ``value``, for painting."""
        hit = np.concatenate(([False], self.state == value, [False]))
        edges = np.flatnonzero(np.diff(hit.astype(np.int8)))
        return list(zip(edges[::2].tolist(), edges[1::2].tolist()))

    def next_polyp(self, after: int) -> int | None:
        idx = np.flatnonzero(self.state[after + 1:] == POLYP)
        return int(after + 1 + idx[0]) if idx.size else None
