"""The live schedule, which the desktop app, the recorder and the live benchmark run.

    source --pv-reader--+--> every frame, drawn with the newest overlay --> display (+ recorder)
                        +--> [one slot, newest wins] --pv-infer--> newest overlay (+ result sinks)

Pass-through (the default): each frame the source delivers is shown as soon as it arrives,
with the newest finished overlay drawn on it, so the video keeps the source's rate whatever
the model's speed. The model takes the newest frame from the one-slot hand-off; frames it
never saw are counted in ``skipped``. Synchronous mode (``mode="sync"``, for reviewing a
recording frame by frame, and always while paused) shows each frame with its own mask, at
the model's pace. The reader paces files at their frame rate and carries out pause / step /
seek; live sources deliver at their own rate.

Whoever displays the pictures (the window, the bench, a test) is told by ``on_frame`` that
one is waiting, takes it with :meth:`LiveRunner.take_display` and reports :meth:`shown`:
the video rate, the video delay (capture to display) and the overlay's age (capture of the
frame the mask came from, to display) are measured there, where the picture really appears.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from polypvision.pipeline.compose import Compositor, LiveFrame, fit_size
from polypvision.pipeline.engine import Sink, Worker, join_all
from polypvision.pipeline.processor import FrameProcessor
from polypvision.pipeline.stats import Clock, LatencyWindow, RateMeter, StatsSnapshot
from polypvision.sources.base import FrameSource
from polypvision.types import Frame, FrameResult

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 1.5
MODES = ("pass-through", "sync")
STALL_FRAMES = 5  # a live source silent for this many frame intervals has lost its signal ...
STALL_MIN_S = 0.25  # ... and never less than this (a jittery network stream is not a loss)
# How long a Python thread may keep the GIL while another waits. The interpreter's default is a
# sizeable share of a 60 fps frame interval: a frame ready for the display must not wait that
# long behind the model's Python-level postprocessing, or the video delay is made of GIL waits.
GIL_SWITCH_S = 0.001
# The inference worker runs at a lower scheduling priority than the video's threads (grabber,
# reader, window): on a busy machine the model yields the CPU to the video, never the reverse.
INFER_NICE = 5


def stall_after_s(fps: float) -> float:
    """How long a live source may be silent before the view says 'signal lost'."""
    return max(STALL_MIN_S, STALL_FRAMES / fps if fps > 0 else STALL_MIN_S)


class Slot:
    """A one-element hand-off where the newest item wins; overwrites are counted."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self.dropped = 0
        self.closed = False

    def put(self, item: Any) -> bool:
        """Hand over ``item``; True when the slot was empty (the taker had caught up)."""
        with self._cond:
            was_empty = self._item is None
            if not was_empty:
                self.dropped += 1
            self._item = item
            self._cond.notify()
            return was_empty

    def take(self, timeout_s: float = 0.0) -> Any:
        """The item (clearing the slot), waiting up to ``timeout_s`` for one; None if none came."""
        with self._cond:
            if self._item is None and not self.closed and timeout_s > 0:
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
    """Runs an open source through a processor on two named workers until stopped."""

    def __init__(
        self,
        source: FrameSource,
        processor: FrameProcessor,
        *,
        paced: bool | None = None,
        speed: float = 1.0,
        mode: str = "pass-through",
        loop: bool = False,
        on_result: Callable[[FrameResult], None] | None = None,
        on_frame: Callable[[], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_end: Callable[[], None] | None = None,
        clock: Clock = time.perf_counter,
    ) -> None:
        if source.info is None:
            raise ValueError("open the source before handing it to LiveRunner")
        if mode not in MODES:
            raise ValueError(f"unknown live mode {mode!r}; use one of {', '.join(MODES)}")
        self.source, self.processor, self.mode, self.loop = source, processor, mode, loop
        self.live = bool(source.info.live)
        self.paced = (not self.live) if paced is None else paced
        self.speed, self.clock = speed, clock
        self.on_result, self.on_frame, self.on_error, self.on_end = (
            on_result,
            on_frame,
            on_error,
            on_end,
        )
        self.display_area: tuple[int, int] | None = None  # pixels the display has; None: full size
        self.result_sinks: list[Sink] = []  # written on the inference thread: keep them cheap
        self.recorder: Any = None  # gets every LiveFrame shown (Recorder.submit, never blocks)
        self.slot, self.display = Slot(), Slot()  # model hand-off (drops = skipped); pictures
        self.capture_rate, self.overlay_rate, self.video_rate = (
            RateMeter(clock=clock) for _ in range(3)
        )
        self.overlay_age, self.video_delay = LatencyWindow(), LatencyWindow()
        self.stall_s = stall_after_s(source.info.fps)
        self.error: BaseException | None = None
        self.ended = False
        self.position = -1  # index of the last frame read
        # that frame's own media time: the transport's clock (index / fps is wrong in VFR files)
        self.position_s: float | None = None
        self._stop = threading.Event()
        self._cmd_lock = threading.Lock()
        self._paused = False
        self._commands: list[tuple[str, int]] = []
        self._wake = threading.Condition()
        self._generation = 0
        self._overlay: FrameResult | None = None
        # the generation and the overlay change together: a result checked against the
        # generation is stored before a seek can clear it, or not at all (issue 23, defect 7)
        self._overlay_lock = threading.Lock()
        self._shown: LiveFrame | None = None
        self._last_frame_t: float | None = None
        self._compositor, self._compose_lock = Compositor(), threading.Lock()
        self._workers: list[Worker] = []
        # the source's drops before this runner took it (a slow model load)
        self._dropped_before = 0
        self._dropped_at_pause: int | None = None  # the source's drops when the user paused

    # -- control (any thread) -------------------------------------------------------------------
    def start(self) -> None:
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_S))
        self._dropped_before = self.source.dropped

        def exit_reader() -> None:
            # A file's decoder must not be released while the reader is inside read()/seek()
            # (OpenCV aborts the process): a reader that outlived stop() closes it on its way out.
            if self._stop.is_set() and not self.live:
                self.source.close()

        self._workers = [
            Worker(
                "pv-reader",
                self._read_frames,
                self._stop,
                on_error=self._failed,
                on_exit=exit_reader,
            ),
            Worker("pv-infer", self._infer_loop, self._stop, on_error=self._failed),
        ]
        for w in self._workers:
            w.start()

    def stop(self) -> None:
        """Stop both workers and close the source; returns within about STOP_TIMEOUT_S."""
        self._stop.set()
        self.slot.close()
        self.display.close()
        with self._wake:
            self._wake.notify_all()
        if self.live:
            # wakes a reader blocked on the device; the grabber owns the capture
            self.source.close()
        join_all(self._workers, STOP_TIMEOUT_S)
        if not self.live and not any(w.alive for w in self._workers if w.name == "pv-reader"):
            self.source.close()

    def _failed(self, exc: BaseException) -> None:
        log.error("%s failed: %s", threading.current_thread().name, exc)
        self.error = exc
        self.slot.close()
        if self.on_error is not None:
            self.on_error(exc)

    @property
    def running(self) -> bool:
        return any(w.alive for w in self._workers)

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def synchronous(self) -> bool:
        """Each shown frame carries its own mask: synchronous mode, or paused for review."""
        return self.mode == "sync" or self._paused

    def pause(self) -> None:
        """Stop at the frame on screen. In pass-through its overlay may be of an earlier frame,
        so a seekable source re-reads it to show it with its own mask, for review."""
        was = self._paused
        self._hold()
        info = self.source.info
        if (
            not was
            and self.mode != "sync"
            and info is not None
            and info.seekable
            and self.position >= 0
        ):
            self._command("step", 0)

    def _hold(self) -> None:
        """Pause. A live source goes on delivering while the picture stands still: what it
        overwrites meanwhile is not video lost, and a recording notes a pause, not a loss."""
        if not self._paused:
            self._dropped_at_pause = self.source.dropped
            rec = self.recorder
            if rec is not None:
                rec.pause()
        self._paused = True

    def resume(self) -> None:
        if self._paused and self._dropped_at_pause is not None:
            self._dropped_before += self.source.dropped - self._dropped_at_pause
            if self.live:  # the silence of a pause is not a lost signal: its clock restarts now
                self._last_frame_t = self.clock()
        self._dropped_at_pause = None
        self._paused = False
        self._command("resume", 0)

    def step(self, delta: int = 1) -> None:
        """Show the frame ``delta`` away from the current one and stay paused."""
        self._hold()
        self._command("step", delta)

    def seek(self, index: int) -> None:
        self._command("seek", index)

    def _command(self, name: str, arg: int) -> None:
        with self._cmd_lock:
            self._commands.append((name, arg))
        with self._wake:
            self._wake.notify_all()

    def swap_processor(self, processor: FrameProcessor) -> None:
        """A new model (or stream state) from the next frame on; its figures start afresh."""
        with self._overlay_lock:
            self.processor = processor
            self._overlay = None
        for m in (self.overlay_rate, self.overlay_age, self.video_delay):
            m.reset()

    # -- display (the consumer's thread) --------------------------------------------------------
    def take_display(self, timeout_s: float = 0.0) -> LiveFrame | None:
        """The newest picture not yet taken, or None."""
        return self.display.take(timeout_s)

    def shown(self, item: LiveFrame, t: float | None = None) -> None:
        """Report that ``item`` is on screen now: the video figures are measured here."""
        t = self.clock() if t is None else t
        self._shown = item
        self.video_rate.tick(t)
        self.video_delay.add((t - item.frame.t_capture) * 1000.0)
        if item.overlay is not None:
            self.overlay_age.add((t - item.overlay.frame.t_capture) * 1000.0)

    def latest(self) -> FrameResult | None:
        """The newest finished model result."""
        return self._overlay

    def latest_shown(self) -> LiveFrame | None:
        """The picture on screen (else the newest one made), for snapshots."""
        return self._shown

    # -- figures ---------------------------------------------------------------------------------
    @property
    def video_dropped(self) -> int:
        """Video frames never shown since this runner started: overtaken at the source or on the
        way to the display (the model's skipped frames are not video frames lost)."""
        return self.display.dropped + self.source_dropped

    @property
    def source_dropped(self) -> int:
        """Frames the source overwrote before the reader took them (the user's pauses aside):
        these never reach the display nor a recording."""
        return self.source.dropped - self._dropped_before

    def status(self, now: float | None = None) -> str:
        """One word for the HUD; a silent live source reads 'signal lost' at once, and a
        pipeline stopped by an error 'failed' (nothing retries it)."""
        if self.error is not None:
            return "failed"
        if self._paused:
            return "paused"
        if self.ended:
            return "ended"
        state = self.source.status
        now = self.clock() if now is None else now
        last = self._last_frame_t
        if self.live and state == "ok" and last is not None and now - last > self.stall_s:
            return "signal lost"
        return state

    def stats(self, now: float | None = None) -> StatsSnapshot:
        now = self.clock() if now is None else now
        a50, a95, _ = self.overlay_age.percentiles()
        d50, d95, _ = self.video_delay.percentiles()
        return StatsSnapshot(
            video_fps=self.video_rate.rate(now),
            overlay_fps=self.overlay_rate.rate(now),
            capture_fps=self.capture_rate.rate(now),
            overlay_age_p50_ms=a50,
            overlay_age_p95_ms=a95,
            video_delay_p50_ms=d50,
            video_delay_p95_ms=d95,
            dropped=self.video_dropped,
            skipped=self.slot.dropped,
            frames=self.overlay_rate.total,
            provider=self.processor.segmenter.report.name,
            status=self.status(now),
            mode=self.mode,
        )

    # -- the two workers ------------------------------------------------------------------------
    def _take_commands(self) -> list[tuple[str, int]]:
        with self._cmd_lock:
            cmds, self._commands = self._commands, []
        return cmds

    def _apply(self, cmds: list[tuple[str, int]]) -> bool:
        """Execute seek/step commands; True when exactly one frame should be read now."""
        # Commands queued together (key repeat, a dragged timeline) fold into one target, so
        # two steps back go two frames back, and the decoder seeks once, not once per command.
        target: int | None = None
        info = self.source.info
        for name, arg in cmds:
            if name in ("seek", "step") and info is not None and info.seekable:
                target = (
                    arg if name == "seek" else (self.position if target is None else target) + arg
                )
                total = info.frame_count
                target = max(0, min(target, (total - 1) if total else target))
        if target is None:
            return False
        self.source.seek(target)
        with self._overlay_lock:
            self._generation += 1
            self.slot.clear()
            self._overlay = None  # an overlay of another place in the clip must not be drawn here
        self.ended = False
        return True

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
                if self.live:
                    continue  # live sources return None only when closed or timing out
                if self.loop and src.info and src.info.seekable:
                    self._apply([("seek", 0)])
                    continue
                self.ended = True
                if self.on_end is not None:
                    self.on_end()
                self._paused = True
                continue
            self._read_one(frame)
            if self.paced and not one:
                t_next += 1.0 / fps
                delay = t_next - time.perf_counter()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    t_next = time.perf_counter()

    def _read_one(self, frame: Frame) -> None:
        self.position = frame.index
        self.position_s = frame.pts_s
        self._last_frame_t = frame.t_capture
        self.capture_rate.tick(frame.t_capture)
        self.slot.put((frame, self._generation))
        if not self.synchronous:  # else the inference worker shows it, with its own mask
            self._publish(frame, self._overlay)

    def _infer_loop(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # Linux: a thread's own nice value
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + INFER_NICE)
        generation = 0
        while not self._stop.is_set():
            item = self.slot.take(0.25)
            if item is None:
                continue
            frame, gen = item
            proc = self.processor  # read once: a model swap lands between frames, never inside one
            if gen != generation:
                proc.reset()
                generation = gen
            settings = proc.settings
            t0 = time.perf_counter()
            probs, presence = proc.infer_full([frame])
            result = proc.analyse(
                frame,
                probs[0],
                settings,
                time.perf_counter(),
                t0,
                None if presence is None else float(presence[0]),
            )
            with self._overlay_lock:
                if gen != self._generation or proc is not self.processor:
                    continue  # a seek or a model swap overtook this frame
                self._overlay = result
            self.overlay_rate.tick(result.t_done)
            for sink in self.result_sinks:
                sink.write(result)
            if self.on_result is not None:
                self.on_result(result)
            if self.mode == "sync" or (self._paused and frame.index == self.position):
                # Paused, only the frame the reader stopped at is shown: an older result still
                # in flight (the end of a clip) must not flash back onto the screen.
                self._publish(frame, result)

    def _publish(self, frame: Frame, overlay: FrameResult | None) -> None:
        """Draw ``overlay`` on ``frame`` at the display's size and hand the picture over."""
        settings = self.processor.settings
        size = fit_size(frame.image.shape[1], frame.image.shape[0], self.display_area)
        with self._compose_lock:
            image = self._compositor.compose(frame.image, overlay, settings, size)
        item = LiveFrame(frame, overlay, settings, image, self.clock())
        if self._shown is None:
            self._shown = item  # a snapshot before the display took its first picture
        if self.display.put(item) and self.on_frame is not None:
            self.on_frame()  # only when the display had caught up: notifications never pile up
        rec = self.recorder
        if rec is not None:  # it draws at full size: the display's picture goes back to the pool
            rec.submit(replace(item, image=None), dropped=self.source_dropped)


class HeadlessDisplay:
    """Takes every picture the moment it is handed over, as a window would (bench, soak, tests)."""

    def __init__(
        self, runner: LiveRunner, on_shown: Callable[[LiveFrame], None] | None = None
    ) -> None:
        self.runner, self.on_shown = runner, on_shown
        self.worker = Worker("pv-display", self._loop, runner._stop)

    def start(self) -> HeadlessDisplay:
        self.worker.start()
        return self

    def _loop(self) -> None:
        r = self.runner
        while not r._stop.is_set():
            item = r.take_display(0.1)
            if item is not None:
                r.shown(item)
                if self.on_shown is not None:
                    self.on_shown(item)
