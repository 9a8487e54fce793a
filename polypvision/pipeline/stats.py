"""Rates and latencies over a sliding window, and the snapshot the HUD, the log and the bench print.

Honest figures: a rate is the number of events in the last ``window_s`` seconds divided by
that window (or by the time since the meter was reset, never less than ``MIN_SPAN_S``), so
it falls to zero when events stop instead of freezing at its last value, and a burst of two
frames a microsecond apart after a reconnect cannot read as thousands of frames a second.
Every meter takes an injectable clock so tests need no sleeping.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Clock = Callable[[], float]
MIN_SPAN_S = 0.5


class RateMeter:
    """Events per second over the last ``window_s`` seconds (``clock``'s seconds)."""

    def __init__(self, window_s: float = 2.0, clock: Clock = time.perf_counter) -> None:
        self.window_s = window_s
        self.clock = clock
        self._t: deque[float] = deque()
        self._lock = threading.Lock()
        self._since = clock()
        self.total = 0

    def reset(self) -> None:
        """Start measuring afresh (a new model, a new source)."""
        with self._lock:
            self._t.clear()
            self._since = self.clock()

    def tick(self, t: float | None = None) -> None:
        t = self.clock() if t is None else t
        with self._lock:
            self._t.append(t)
            self.total += 1
            while self._t and t - self._t[0] > self.window_s:
                self._t.popleft()

    def rate(self, now: float | None = None) -> float:
        now = self.clock() if now is None else now
        with self._lock:
            while self._t and now - self._t[0] > self.window_s:
                self._t.popleft()
            span = max(min(self.window_s, now - self._since), MIN_SPAN_S)
            return len(self._t) / span


class LatencyWindow:
    """The last ``size`` latencies (ms), for p50 / p95 / max."""

    def __init__(self, size: int = 300) -> None:
        self._v: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, ms: float) -> None:
        with self._lock:
            self._v.append(ms)

    def reset(self) -> None:
        with self._lock:
            self._v.clear()

    def __len__(self) -> int:
        return len(self._v)

    def percentiles(self) -> tuple[float, float, float]:
        with self._lock:
            if not self._v:
                return (0.0, 0.0, 0.0)
            a = np.fromiter(self._v, float)
        return float(np.percentile(a, 50)), float(np.percentile(a, 95)), float(a.max())


@dataclass(frozen=True)
class StatsSnapshot:
    """What the live view measured. Video: the pictures shown (each source frame in
    pass-through); overlay: the model's finished results. ``overlay age``: from the capture of
    the frame a mask came from to the display of the picture it is drawn on; ``video delay``:
    from a frame's capture to its display. ``dropped``: video frames never shown (should be
    none); ``skipped``: frames the model never saw because a newer one arrived (by design)."""

    video_fps: float
    overlay_fps: float
    capture_fps: float
    overlay_age_p50_ms: float
    overlay_age_p95_ms: float
    video_delay_p50_ms: float
    video_delay_p95_ms: float
    dropped: int
    skipped: int
    frames: int
    provider: str
    status: str
    mode: str = "pass-through"


def format_stats(s: StatsSnapshot) -> list[str]:
    """The HUD / status-bar / log lines; one pure function so GUI, log and CLI say the same thing.

    Scripts read the joined line for ``video X fps``, ``overlay Y fps``, ``overlay age p95 Z ms``
    and ``dropped N``: keep those words and their single spaces.
    """
    mode = " | synchronous" if s.mode == "sync" else ""
    if s.status == "paused":
        # Nothing is measured while the picture stands still: rates of 0.0 beside the ages of
        # the last overlay would read as a frozen, slow pipeline.
        return [
            f"video paused | dropped {s.dropped}",
            "rates, overlay age and video delay are measured while the video plays",
            f"{s.provider} | {s.status}{mode}",
        ]
    return [
        f"video {s.video_fps:.1f} fps | overlay {s.overlay_fps:.1f} fps | dropped {s.dropped}",
        f"overlay age p95 {s.overlay_age_p95_ms:.0f} ms (p50 {s.overlay_age_p50_ms:.0f}) | "
        f"video delay p95 {s.video_delay_p95_ms:.0f} ms",
        f"{s.provider} | {s.status}{mode}",
    ]
