"""One progress line for the whole run: procedures done / failed, frames per second, ETA.

Engines report three things (a procedure started, its frames so far, its result); the state
here turns them into the line. Frames per second counts only frames annotated in this run
(a procedure done earlier costs a check, not an annotation), over the run's elapsed time. The ETA
needs the frames still to come: a running procedure's own total when its source declared one,
and for procedures not started yet the mean size of those whose size is known. The clock is
injected, so the arithmetic is tested without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from polypvision.batch.result import DONE_EARLIER, FAILED, OK, PARTIAL, ProcedureResult
from polypvision.progress import Progress

LOG_EVERY_S = 30.0  # the line's interval in a log (not a terminal)


@dataclass
class RunProgress:
    total: int
    clock: Callable[[], float] = time.monotonic
    started_at: float = field(init=False)
    counts: dict[str, int] = field(
        default_factory=lambda: {OK: 0, DONE_EARLIER: 0, PARTIAL: 0, FAILED: 0}
    )
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
        if result.status == OK or (result.status == PARTIAL and result.analysed_now):
            self.frames_finished += result.frames_out
        if result.status in (OK, DONE_EARLIER, PARTIAL):
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
        if c.get(DONE_EARLIER):
            parts.append(f"{c[DONE_EARLIER]} already done")
        if c.get(PARTIAL):
            parts.append(f"{c[PARTIAL]} partial")
        parts.append(f"{c.get(FAILED, 0)} failed")
        if self.running:
            parts.append(f"{len(self.running)} running")
        if self.retries:
            parts.append(f"{self.retries} retried")
        eta = self.eta_s()
        tail = f"{self.fps():.1f} frames/s" + (
            f", ETA {format_eta(eta)}" if eta is not None else ""
        )
        return ", ".join(parts) + " | " + tail


def format_eta(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class ProgressDisplay:
    """The run's line on stderr (:mod:`polypvision.progress`): a tqdm bar with the line beside it on
    a terminal, otherwise the line at most every ``every_s`` seconds and at the end."""

    def __init__(
        self,
        state: RunProgress,
        enabled: bool = True,
        stream: TextIO | None = None,
        every_s: float | None = None,
    ) -> None:
        self.state = state
        self.bar = Progress(
            state.total,
            unit="procedures",
            stream=stream,
            enabled=enabled,
            every_s=every_s if every_s is not None else LOG_EVERY_S,
            describe=state.line,
            clock=state.clock,
        )

    def show(self, force: bool = False) -> None:
        self.bar.update_to(self.state.finished_count, force=force)

    def note(self, message: str) -> None:
        """A line of its own (a failure, a retry) without breaking the progress line."""
        self.bar.write(message)

    def close(self) -> None:
        self.show(force=True)
        self.bar.close(last_line=False)
