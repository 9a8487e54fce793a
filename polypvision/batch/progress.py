"""One progress line for the whole run: procedures done / failed, frames per second, ETA.

Engines report three things (a procedure started, its frames so far, its result); the state
here turns them into the line. Frames per second counts only frames annotated in this run
(a skipped procedure costs a check, not an annotation), over the run's elapsed time. The ETA
needs the frames still to come: a running procedure's own total when its source declared one,
and for procedures not started yet the mean size of those whose size is known. The clock is
injected, so the arithmetic is tested without waiting.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from polypvision.batch.result import FAILED, OK, SKIPPED, ProcedureResult


@dataclass
class RunProgress:
    total: int
    clock: Callable[[], float] = time.monotonic
    started_at: float = field(init=False)
    counts: dict[str, int] = field(default_factory=lambda: {OK: 0, SKIPPED: 0, FAILED: 0})
    running: dict[int, tuple[int, int | None]] = field(default_factory=dict)  # id -> (done, total)
    frames_finished: int = 0  # frames of procedures annotated and finished in this run
    sizes: list[int] = field(default_factory=list)  # frames of every procedure whose size is known
    retries: int = 0

    def __post_init__(self) -> None:
        self.started_at = self.clock()

    # -- what the engines report --------------------------------------------------------------
    def started(self, pid: int) -> None:
        self.running.setdefault(pid, (0, None))

    def progress(self, pid: int, done: int, total: int | None) -> None:
        self.running[pid] = (done, total)

    def retried(self, pid: int) -> None:
        self.retries += 1
        self.running.pop(pid, None)

    def finished(self, result: ProcedureResult) -> None:
        self.running.pop(result.id, None)
        self.counts[result.status] = self.counts.get(result.status, 0) + 1
        if result.status == OK:
            self.frames_finished += result.frames_out
        if result.status in (OK, SKIPPED):
            self.sizes.append(result.frames_out)

    # -- what the line shows ----------------------------------------------------------------
    @property
    def finished_count(self) -> int:
        return sum(self.counts.values())

    @property
    def frames_done(self) -> int:
        return self.frames_finished + sum(d for d, _ in self.running.values())

    def fps(self) -> float:
        elapsed = self.clock() - self.started_at
        return self.frames_done / elapsed if elapsed > 0 else 0.0

    def eta_s(self) -> float | None:
        fps = self.fps()
        if self.finished_count >= self.total:
            return None
        known = self.sizes + [t for _, t in self.running.values() if t]
        if fps <= 0 or not known:
            return None
        mean = sum(known) / len(known)
        left_running = sum(max((t if t else mean) - d, 0) for d, t in self.running.values())
        not_started = self.total - self.finished_count - len(self.running)
        return (left_running + max(not_started, 0) * mean) / fps

    def line(self) -> str:
        c = self.counts
        parts = [f"{self.finished_count}/{self.total} procedures", f"{c.get(OK, 0)} ok"]
        if c.get(SKIPPED):
            parts.append(f"{c[SKIPPED]} already done")
        parts.append(f"{c.get(FAILED, 0)} failed")
        if self.running:
            parts.append(f"{len(self.running)} running")
        if self.retries:
            parts.append(f"{self.retries} retried")
        eta = self.eta_s()
        tail = f"{self.fps():.1f} frames/s" + (f", ETA {format_eta(eta)}" if eta is not None else "")
        return ", ".join(parts) + " | " + tail


def format_eta(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class ProgressDisplay:
    """Writes the line to stderr: in place on a terminal, otherwise a line every ``every_s``."""

    def __init__(self, state: RunProgress, enabled: bool = True, stream: TextIO | None = None,
                 every_s: float | None = None) -> None:
        self.state = state
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = every_s if every_s is not None else (0.5 if self.tty else 30.0)
        self._last: float | None = None

    def show(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = self.state.clock()
        if not force and self._last is not None and now - self._last < self.every_s:
            return
        self._last = now
        text = self.state.line()
        self.stream.write(f"\r\x1b[K{text}" if self.tty else text + "\n")
        self.stream.flush()

    def note(self, message: str) -> None:
        """A line of its own (a failure, a retry) without breaking the progress line."""
        if not self.enabled:
            return
        self.stream.write(("\r\x1b[K" if self.tty else "") + message + "\n")
        self.stream.flush()
        self._last = None

    def close(self) -> None:
        self.show(force=True)
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
