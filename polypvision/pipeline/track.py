"""Per-frame verdicts of a seekable clip: the detection timeline under the seek bar.

A sink like any other: the live view writes each model result into it (the timeline fills as
the clip plays) and a clip scan runs the offline schedule with it as the only sink. Written
by one worker at a time (one element per frame and array: a store is atomic enough, and a
stale read only delays a mark by one repaint), read by the window. Its polyp events are
counted by :mod:`polypvision.events`, the definition the report and the batch summary use;
frames not analysed yet count as frames without a polyp.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from polypvision.events import EventSettings, PolypEvent, find_events_in
from polypvision.types import FrameResult

UNKNOWN, CLEAR, POLYP = 0, 1, 2


class DetectionTrack:
    name = "timeline"
    needs_image = False

    def __init__(
        self, frame_count: int, fps: float = 0.0, events: EventSettings | None = None
    ) -> None:
        n = max(frame_count, 0)
        self.state = np.zeros(n, np.uint8)
        self.t = np.full(n, np.nan)  # each analysed frame's own timestamp (variable frame rates)
        self.peak = np.zeros(n, np.float32)
        self.score = np.zeros(n, np.float32)
        self.area = np.zeros(n, np.float32)
        self.fps = fps
        self.event_settings = events or EventSettings()
        self.version = 0
        self._events: tuple[int, list[PolypEvent]] = (-1, [])

    def __len__(self) -> int:
        return len(self.state)

    def write(self, result: FrameResult) -> None:
        i = result.index
        if 0 <= i < len(self.state):
            d = result.detection
            self.t[i] = result.frame.pts_s
            self.peak[i] = d.peak_probability
            self.score[i] = d.score
            self.area[i] = d.area_fraction
            self.state[i] = POLYP if d.present else CLEAR
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

    def events(self) -> list[PolypEvent]:
        """The polyp events among the frames analysed so far (recounted when the track changed)."""
        version = self.version
        if self._events[0] != version:
            idx = np.arange(len(self.state))
            period = 1.0 / self.fps if self.fps > 0 else 1.0
            t = np.where(np.isnan(self.t), idx * period, self.t)
            self._events = (
                version,
                find_events_in(
                    t,
                    self.state == POLYP,
                    self.peak,
                    self.area,
                    self.event_settings,
                    self.fps or None,
                    score=self.score,
                ),
            )
        return self._events[1]

    def event_at(self, index: int) -> PolypEvent | None:
        return next((e for e in self.events() if e.start_frame <= index <= e.end_frame), None)

    def next_polyp(self, after: int) -> int | None:
        idx = np.flatnonzero(self.state[after + 1 :] == POLYP)
        return int(after + 1 + idx[0]) if idx.size else None
