"""The live pipeline that the desktop app (and the live benchmark) drives.

    source --pv-reader--> [one slot] --pv-infer--> latest result (+ sinks)

The reader thread owns the source: it paces file sources at their frame rate (so a recording
plays like a video) and executes pause / step / seek commands; for live sources it simply
takes the newest frame. The one-slot hand-off means the model always gets the newest frame
and a slow model drops frames instead of building a backlog; every overwritten frame is
counted. The inference thread resets the smoother whenever a seek changed the stream.
Threads are named, stop through an Event and join with a timeout; an exception in either is
kept in ``error`` and handed to ``on_error`` (the GUI shows it), never swallowed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from polypvision.pipeline.processor import FrameProcessor
from polypvision.pipeline.stats import LatencyWindow, RateMeter, StatsSnapshot
from polypvision.sources.base import FrameSource
from polypvision.types import Frame, FrameResult

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 1.5


class FrameSlot:
    """A one-element hand-off where the newest item wins; overwrites are counted."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: tuple[Frame, int] | None = None
        self.dropped = 0
        self.closed = False

    def put(self, frame: Frame, generation: int) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = (frame, generation)
            self._cond.notify()

    def get(self, timeout_s: float = 0.25) -> tuple[Frame, int] | None:
        with self._cond:
            if self._item is None and not self.closed:
                self._cond.wait(timeout_s)
            item, self._item = self._item, None
            return item

    def clear(self) -> None:
        with self._cond:
            self._item = None

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class LiveRunner:
    """Runs a source through a processor on two named threads until stopped."""

    def __init__(self, source: FrameSource, processor: FrameProcessor, *, paced: bool | None = None,
                 speed: float = 1.0, on_result: Callable[[FrameResult], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None,
                 on_end: Callable[[], None] | None = None, loop: bool = False) -> None:
        if source.info is None:
            raise ValueError("open the source before handing it to LiveRunner")
        self.source, self.processor = source, processor
        self.paced = (not source.info.live) if paced is None else paced
        self.speed = speed
        self.loop = loop
        self.on_result, self.on_error, self.on_end = on_result, on_error, on_end
        self.sinks: list[Callable[[FrameResult], None]] = []
        self.slot = FrameSlot()
        self.capture_rate, self.infer_rate = RateMeter(), RateMeter()
        self.latency = LatencyWindow()
        self.error: BaseException | None = None
        self.ended = False
        self.position = -1  # index of the last frame read
        self._stop = threading.Event()
        self._cmd_lock = threading.Lock()
        self._paused = False
        self._commands: list[tuple[str, int]] = []
        self._wake = threading.Condition()
        self._generation = 0
        self._latest: FrameResult | None = None
        self._latest_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # -- control (any thread) -------------------------------------------------------------------
    def start(self) -> None:
        for name, fn in (("pv-reader", self._read_loop), ("pv-infer", self._infer_loop)):
            t = threading.Thread(target=self._guard(fn), name=name, daemon=True)
            self._threads.append(t)
            t.start()

    def stop(self) -> None:
        """Stop both threads and close the source; returns within about STOP_TIMEOUT_S."""
        self._stop.set()
        self.slot.close()
        with self._wake:
            self._wake.notify_all()
        live = bool(self.source.info and self.source.info.live)
        if live:
            # Wakes a reader blocked on the device; the grabber thread owns the capture.
            self.source.close()
        deadline = time.perf_counter() + STOP_TIMEOUT_S
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.perf_counter()))
        self._threads = [t for t in self._threads if t.is_alive()]
        if not live and not any(t.name == "pv-reader" for t in self._threads):
            # A file's decoder must not be released while the reader is inside read()/seek()
            # (OpenCV aborts the process); a reader that is still busy closes it on its way out.
            self.source.close()

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._command("resume", 0)

    def step(self, delta: int = 1) -> None:
        """Show the frame ``delta`` away from the current one and stay paused."""
        self._paused = True
        self._command("step", delta)

    def seek(self, index: int) -> None:
        self._command("seek", index)

    def _command(self, name: str, arg: int) -> None:
        with self._cmd_lock:
            self._commands.append((name, arg))
        with self._wake:
            self._wake.notify_all()

    def latest(self) -> FrameResult | None:
        with self._latest_lock:
            return self._latest

    def stats(self, display_fps: float = 0.0) -> StatsSnapshot:
        p50, p95, mx = self.latency.percentiles()
        status = "paused" if self._paused else ("ended" if self.ended else self.source.status)
        return StatsSnapshot(capture_fps=self.capture_rate.rate(), infer_fps=self.infer_rate.rate(),
                             display_fps=display_fps, latency_p50_ms=p50, latency_p95_ms=p95,
                             latency_max_ms=mx, dropped=self.slot.dropped + self.source.dropped,
                             frames=self.infer_rate.total, provider=self.processor.segmenter.report.name,
                             status=status)

    # -- threads ----------------------------------------------------------------------------------
    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # surfaced to the UI / caller, and logged once
                if not self._stop.is_set():
                    log.error("%s failed: %s", threading.current_thread().name, exc)
                    self.error = exc
                    if self.on_error is not None:
                        self.on_error(exc)
                self._stop.set()
                self.slot.close()
        return run

    def _take_commands(self) -> list[tuple[str, int]]:
        with self._cmd_lock:
            cmds, self._commands = self._commands, []
        return cmds

    def _apply(self, cmds: list[tuple[str, int]]) -> bool:
        """Execute seek/step commands; True when exactly one frame should be read now."""
        # Commands queued together (key repeat, a dragged timeline) fold into one target, so
        # two steps back go two frames back, and the decoder seeks once, not once per command.
        target: int | None = None
        for name, arg in cmds:
            if name in ("seek", "step") and self.source.info and self.source.info.seekable:
                target = arg if name == "seek" else (self.position if target is None else target) + arg
                total = self.source.info.frame_count
                target = max(0, min(target, (total - 1) if total else target))
        if target is None:
            return False
        self.source.seek(target)
        self._generation += 1
        self.slot.clear()
        self.ended = False
        return True

    def _read_loop(self) -> None:
        try:
            self._read_frames()
        finally:
            if self._stop.is_set() and not (self.source.info and self.source.info.live):
                self.source.close()

    def _read_frames(self) -> None:
        src = self.source
        fps = (src.info.fps if src.info else 25.0) * self.speed
        t_next = time.perf_counter()
        while not self._stop.is_set():
            one = self._apply(self._take_commands())
            if self._paused and not one:
                with self._wake:
                    self._wake.wait(0.1)
                t_next = time.perf_counter()
                continue
            frame = src.read()
            if frame is None:
                if self._stop.is_set():
                    return
                if src.info and src.info.live:
                    continue  # live sources return None only when closed or timing out
                if self.loop and src.info and src.info.seekable:
                    self._apply([("seek", 0)])
                    continue
                self.ended = True
                if self.on_end is not None:
                    self.on_end()
                self._paused = True
                continue
            self.position = frame.index
            self.capture_rate.tick(frame.t_capture)
            self.slot.put(frame, self._generation)
            if self.paced and not one:
                t_next += 1.0 / fps
                delay = t_next - time.perf_counter()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    t_next = time.perf_counter()

    def _infer_loop(self) -> None:
        generation = 0
        while not self._stop.is_set():
            item = self.slot.get()
            if item is None:
                continue
            frame, gen = item
            if gen != generation:
                self.processor.reset()
                generation = gen
            result = self.processor.process([frame])[0]
            self.infer_rate.tick(result.t_done)
            self.latency.add(result.latency_ms)
            with self._latest_lock:
                self._latest = result
            for sink in list(self.sinks):
                sink(result)
            if self.on_result is not None:
                self.on_result(result)
