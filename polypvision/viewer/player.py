"""One playing source: the live runner, its detection track, recording and snapshots.

Plain Python, no Qt: everything here can be driven (and tested) without a window. The session
controller (:mod:`polypvision.viewer.controller`) owns at most one :class:`Player` and replaces
it when the source changes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import cv2

from polypvision.errors import OutputError
from polypvision.fileio import atomic_path
from polypvision.pipeline.compose import Compositor
from polypvision.pipeline.engine import Progress
from polypvision.pipeline.live import LiveRunner
from polypvision.pipeline.processor import FrameProcessor, StreamSettings
from polypvision.pipeline.recorder import Recorder
from polypvision.pipeline.stats import StatsSnapshot
from polypvision.pipeline.track import DetectionTrack
from polypvision.recording import check_output_path, write_file
from polypvision.sources.base import FrameSource
from polypvision.types import Frame
from polypvision.viewer.review import ReviewProcessor
from polypvision.viewer.scan import ClipScan

__all__ = ["Player"]

log = logging.getLogger(__name__)


class Player:
    """Runs one opened source through the model until stopped."""

    def __init__(
        self,
        spec: str,
        source: FrameSource,
        processor: FrameProcessor,
        *,
        loop: bool = False,
        mode: str = "pass-through",
        on_frame: Callable[[], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        if source.info is None:
            raise ValueError("open the source first")
        self.spec, self.source, self.info = spec, source, source.info
        self._review_source: FrameSource | None = None  # the second reader replays come from
        processor = self._reviewing(processor)
        self.runner = LiveRunner(
            source,
            processor,
            on_frame=on_frame,
            on_error=on_error,
            on_end=on_end,
            loop=loop,
            mode=mode,
        )
        n = self.info.frame_count or 0
        self.track = (
            DetectionTrack(n, self.info.fps or 0.0) if self.info.seekable and n > 0 else None
        )
        if self.track is not None:
            self.runner.result_sinks.append(self.track)
        self.recorder: Recorder | None = None
        self.scan: ClipScan | None = None  # filling the timeline, while one runs
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
            review, self._review_source = self._review_source, None
            if review is not None:
                review.close()
        return saved

    @property
    def processor(self) -> FrameProcessor:
        return self.runner.processor

    def swap_processor(self, processor: FrameProcessor) -> None:
        """A new model takes over at the next frame; no thread restarts."""
        self.runner.swap_processor(self._reviewing(processor))

    # -- review: the export's mask on a paused, stepped or sought frame ---------------------------
    def _reviewing(self, processor: FrameProcessor) -> FrameProcessor:
        """A seekable clip's frames are reviewed: seeks and steps keep the smoothing the export
        has (:mod:`polypvision.viewer.review`); a live source has no frames to replay."""
        if not self.info.seekable:
            return processor
        return ReviewProcessor.of(processor, self._review_frames)

    def _review_frames(self, start: int, stop: int) -> list[Frame]:
        """Frames ``start``..``stop - 1`` from a second reader of the clip (the inference
        thread's; the playing reader never moves for a replay)."""
        from polypvision.sources import make_source

        src = self._review_source
        if src is None:
            src = make_source(self.spec, fps=self.info.fps)
            src.open()
            self._review_source = src
        src.seek(start)
        out: list[Frame] = []
        while len(out) < stop - start:
            f = src.read()
            if f is None or f.index >= stop:
                break
            out.append(f)
        return out

    def apply(self, settings: StreamSettings) -> None:
        """New settings from the next frame on: one assignment, read once per frame."""
        self.runner.processor.settings = settings

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
        return self.runner.stats()

    @property
    def scanning(self) -> bool:
        return self.scan is not None and self.scan.running

    def toggle_scan(
        self,
        on_progress: Callable[[Progress], None],
        on_done: Callable[[BaseException | None], None],
    ) -> bool:
        """Start a whole-clip scan for the timeline (True), or stop the running one (False)."""
        if self.scan is not None and self.scan.running:
            self.scan.stop()
            return False
        if self.track is None:
            raise OutputError("only a video file or a folder of frames can be scanned")
        self.scan = ClipScan(
            self.spec, self.processor, self.track, self.info.fps, on_progress, on_done
        )
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
            self.recorder = Recorder(
                path, self.info.width, self.info.height, fps, live=self.info.live
            )
            self.runner.recorder = self.recorder
            return self.recorder.path

    def stop_recording(self) -> Path | None:
        """Finish the file; raises OutputError if writing failed (nothing is left behind then)."""
        with self._rec_lock:
            rec, self.recorder = self.recorder, None
            if rec is None:
                return None
            self.runner.recorder = None
            if rec.frames == 0 and rec.pending == 0 and rec.error is None:
                rec.abort()
                raise OutputError(
                    "the recording has no frames (nothing was played); nothing was saved"
                )
            return rec.stop()

    def snapshot(self, path: Path) -> Path:
        """The picture on screen at full size: its frame with the overlay it was shown with."""
        item = self.runner.latest_shown()
        if item is None:
            raise OutputError("no frame to save yet; wait for the video to appear")
        path = check_output_path(Path(path))
        image = Compositor().compose(item.frame.image, item.overlay, item.settings)
        ok, png = cv2.imencode(".png", image)
        if not ok:
            raise OutputError(
                f"cannot encode the snapshot as PNG ({image.shape[1]}x{image.shape[0]})"
            )
        try:
            with atomic_path(path, ".png") as tmp:
                write_file(tmp, png.tobytes())  # a full disk raises here (cv2.imwrite says nothing)
        except OSError as exc:
            raise OutputError(
                f"cannot write {path}: {exc.strerror or exc}; check the folder and free disk space"
            ) from None
        return path
