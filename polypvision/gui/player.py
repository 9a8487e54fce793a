"""One playing source: the live runner, its detection track, recording and snapshots.

Plain Python, no Qt: everything here can be driven (and tested) without a window. The main
window owns at most one :class:`Player` and replaces it when the source changes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from polypvision.errors import OutputError
from polypvision.overlay import OverlayStyle
from polypvision.pipeline.live import LiveRunner
from polypvision.pipeline.processor import FrameProcessor
from polypvision.pipeline.recorder import Recorder
from polypvision.pipeline.stats import RateMeter, StatsSnapshot
from polypvision.recording import check_output_path
from polypvision.smoothing import HYSTERESIS_GAP, SmoothingConfig
from polypvision.sources.base import FrameSource
from polypvision.types import FrameResult

log = logging.getLogger(__name__)

UNKNOWN, CLEAR, POLYP = 0, 1, 2


class DetectionTrack:
    """Per-frame verdicts of a seekable clip, for the timeline under the seek bar.

    Written by the inference thread (one byte per frame: a store is atomic enough, and a
    stale read only delays a mark by one repaint), read by the GUI thread.
    """

    def __init__(self, frame_count: int) -> None:
        self.state = np.zeros(max(frame_count, 0), np.uint8)
        self.version = 0

    def __len__(self) -> int:
        return len(self.state)

    def mark(self, result: FrameResult) -> None:
        i = result.index
        if 0 <= i < len(self.state):
            self.state[i] = POLYP if result.detection.present else CLEAR
            self.version += 1

    def runs(self, value: int = POLYP) -> list[tuple[int, int]]:
        """[start, end) runs of frames with ``value``, for painting."""
        hit = np.concatenate(([False], self.state == value, [False]))
        edges = np.flatnonzero(np.diff(hit.astype(np.int8)))
        return list(zip(edges[::2].tolist(), edges[1::2].tolist()))

    def next_polyp(self, after: int) -> int | None:
        idx = np.flatnonzero(self.state[after + 1:] == POLYP)
        return int(after + 1 + idx[0]) if idx.size else None


@dataclass(frozen=True)
class OverlaySettings:
    """What the overlay panel edits; turned into the processor's style and smoothing."""

    enabled: bool = True
    fill: bool = True
    contour: bool = True
    box: bool = False
    color: tuple[int, int, int] = (0, 255, 0)  # BGR, like OverlayStyle
    opacity: float = 0.35
    threshold: float | None = None  # None: the model's own
    smoothing: float = 0.5  # 0 = off exactly; 0.5 = the core's defaults; 1 = strongest

    def style(self, base: OverlayStyle) -> OverlayStyle:
        return replace(base, enabled=self.enabled, fill=self.fill, contour=self.contour, box=self.box,
                       color=self.color, opacity=self.opacity)

    def smoothing_config(self, threshold: float, min_area: float = 0.0, min_peak: float = 0.0) -> SmoothingConfig:
        """One strength knob for the core's parameters: 0 = off exactly, 0.5 = the core's defaults
        (with the model's own gate ``min_area`` / ``min_peak``), 1 = twice as strong."""
        s = min(max(self.smoothing, 0.0), 1.0)
        base = SmoothingConfig()
        k = 2.0 * s
        return SmoothingConfig(alpha=1.0 - (1.0 - base.alpha) * k, on=threshold,
                               off=max(threshold - HYSTERESIS_GAP * k, 0.0), min_area=min(min_area * k, 0.5),
                               min_peak=threshold + (min_peak - threshold) * min(k, 1.0) if min_peak > threshold else 0.0)


def apply_overlay(processor: FrameProcessor, settings: OverlaySettings) -> None:
    """Push the panel's settings into a (possibly running) processor."""
    t = settings.threshold if settings.threshold is not None else processor.segmenter.contract.output.threshold
    processor.style = settings.style(processor.style)
    out = processor.segmenter.contract.output
    cfg = settings.smoothing_config(t, out.min_area, out.min_peak)
    if t != processor.threshold or cfg != processor.smoothing:
        processor.set_threshold(t)
        processor.set_smoothing(cfg)


class RealTimeFeed:
    """Feeds a Recorder so the file keeps the wall-clock timeline of what was on screen.

    The recorder writes at the source's frame rate, but results arrive at the model's rate:
    with a model at 15 fps on a 25 fps clip, a 10 s recording would otherwise play back in
    6 s. Each result is repeated for the frame slots that passed since the last one (the
    screen also kept showing it). A long gap (a pause) is not filled beyond MAX_REPEAT frames,
    so the recorder's bounded queue never overflows.
    """

    MAX_REPEAT = 12

    def __init__(self, recorder: Recorder, fps: float) -> None:
        self.recorder, self.fps = recorder, fps
        self.t0: float | None = None
        self.slots = 0  # frame slots written so far

    def __call__(self, result: FrameResult) -> None:
        t = result.frame.t_capture
        if self.t0 is None:
            self.t0 = t
        due = int((t - self.t0) * self.fps) + 1  # slots that should exist after this frame
        n = min(max(due - self.slots, 1), self.MAX_REPEAT)
        for _ in range(n):
            self.recorder.submit(result)
        self.slots = max(due, self.slots + n)


class Player:
    """Runs one opened source through the model until stopped."""

    def __init__(self, spec: str, source: FrameSource, processor: FrameProcessor, *, loop: bool = False,
                 on_error: Callable[[BaseException], None] | None = None,
                 on_end: Callable[[], None] | None = None) -> None:
        if source.info is None:
            raise ValueError("open the source first")
        self.spec, self.source, self.info = spec, source, source.info
        self.runner = LiveRunner(source, processor, on_error=on_error, on_end=on_end, loop=loop)
        n = self.info.frame_count or 0
        self.track = DetectionTrack(n) if self.info.seekable and n > 0 else None
        if self.track is not None:
            self.runner.sinks.append(self.track.mark)
        self.recorder: Recorder | None = None
        self._feed: RealTimeFeed | None = None
        self.scan = None  # a ClipScan filling the timeline, while one runs
        self.display_rate = RateMeter()
        self._rec_lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self.runner.start()

    def stop(self) -> Path | None:
        """Stop the threads; an active recording is finished first, never lost."""
        saved = None
        if self.scan is not None:
            self.scan.stop()
        try:
            if self.recorder is not None:
                saved = self.stop_recording()
        finally:
            self.runner.stop()
        return saved

    @property
    def processor(self) -> FrameProcessor:
        return self.runner.processor

    def swap_processor(self, processor: FrameProcessor) -> None:
        """A new model takes over at the next frame; no thread restarts."""
        self.runner.processor = processor

    # -- playback -----------------------------------------------------------------------------
    @property
    def seekable(self) -> bool:
        return bool(self.info.seekable)

    def toggle_pause(self) -> None:
        r = self.runner
        if not r.paused:
            r.pause()
            return
        if r.ended and self.seekable:  # play at the end starts over, as video players do
            r.seek(0)
        r.resume()

    def refresh(self) -> None:
        """Redraw the current frame with new settings while paused (re-reads it)."""
        if self.runner.paused and self.seekable and self.runner.position >= 0:
            self.runner.step(0)

    def stats(self) -> StatsSnapshot:
        return self.runner.stats(self.display_rate.rate())

    def toggle_scan(self, on_progress: Callable, on_done: Callable) -> bool:
        """Start a whole-clip scan for the timeline (True), or stop the running one (False)."""
        from polypvision.gui.scan import ClipScan

        if self.scan is not None and self.scan.running:
            self.scan.stop()
            return False
        if self.track is None:
            raise OutputError("only a video file or a folder of frames can be scanned")
        self.scan = ClipScan(self.spec, self.processor, self.track, self.info.fps, on_progress, on_done)
        self.scan.start()
        return True

    # -- recording and snapshots ----------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self.recorder is not None

    def start_recording(self, path: Path) -> Path:
        with self._rec_lock:
            if self.recorder is not None:
                return self.recorder.path
            fps = self.info.fps if self.info.fps and self.info.fps > 0 else 25.0
            self.recorder = Recorder(path, self.info.width, self.info.height, fps)
            self._feed = RealTimeFeed(self.recorder, fps)
            self.runner.sinks.append(self._feed)
            return self.recorder.path

    def stop_recording(self) -> Path | None:
        """Finish the file; raises OutputError if writing failed (nothing is left behind then)."""
        with self._rec_lock:
            rec, self.recorder = self.recorder, None
            if rec is None:
                return None
            if self._feed in self.runner.sinks:
                self.runner.sinks.remove(self._feed)
            self._feed = None
            if rec.frames == 0 and rec.queue.empty():
                rec.abort()
                raise OutputError("the recording has no frames (nothing was played); nothing was saved")
            return rec.stop()

    def snapshot(self, path: Path) -> Path:
        result = self.runner.latest()
        if result is None:
            raise OutputError("no frame to save yet; wait for the video to appear")
        path = check_output_path(Path(path))
        if not cv2.imwrite(str(path), result.annotated):
            raise OutputError(f"cannot write {path}; check the folder and free disk space")
        return path
