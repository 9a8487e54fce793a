"""Rates and latencies over a sliding window, and the snapshot the UI and bench print."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np


class RateMeter:
    """Events per second over the last ``window_s`` seconds (perf_counter clock)."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._t: deque[float] = deque()
        self._lock = threading.Lock()
        self.total = 0

    def tick(self, t: float | None = None) -> None:
        t = time.perf_counter() if t is None else t
        with self._lock:
            self._t.append(t)
            self.total += 1
            while self._t and t - self._t[0] > self.window_s:
                self._t.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.perf_counter() if now is None else now
        with self._lock:
            while self._t and now - self._t[0] > self.window_s:
                self._t.popleft()
            if len(self._t) < 2:
                return 0.0
            span = self._t[-1] - self._t[0]
            return (len(self._t) - 1) / span if span > 0 else 0.0


class LatencyWindow:
    """The last ``size`` latencies (ms), for p50 / p95 / max."""

    def __init__(self, size: int = 300) -> None:
        self._v: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, ms: float) -> None:
        with self._lock:
            self._v.append(ms)

    def percentiles(self) -> tuple[float, float, float]:
        with self._lock:
            if not self._v:
                return (0.0, 0.0, 0.0)
            a = np.fromiter(self._v, float)
        return float(np.percentile(a, 50)), float(np.percentile(a, 95)), float(a.max())


@dataclass(frozen=True)
class StatsSnapshot:
    capture_fps: float
    infer_fps: float
    display_fps: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_max_ms: float
    dropped: int
    frames: int
    provider: str
    status: str


def format_stats(s: StatsSnapshot) -> list[str]:
    """The HUD / status-bar lines; one pure function so GUI and CLI say the same thing."""
    return [
        f"capture {s.capture_fps:5.1f} fps | model {s.infer_fps:5.1f} fps | display {s.display_fps:5.1f} fps",
        f"latency p50 {s.latency_p50_ms:4.0f} ms  p95 {s.latency_p95_ms:4.0f} ms | dropped {s.dropped}",
        f"{s.provider} | {s.status}",
    ]
