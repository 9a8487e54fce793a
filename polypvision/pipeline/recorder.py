"""Recording the live view to H.264: a sink behind a non-blocking writer worker.

The live view hands every picture it shows to :meth:`Recorder.submit`, which never blocks: a
:class:`~polypvision.pipeline.engine.SinkWriter` (bounded queue, one worker) draws the overlay
at full size and encodes, and if the disk cannot keep up a frame is dropped from the file and
counted rather than stalling the picture. Each frame is stamped with its capture time, so the
file keeps the timeline of what was on screen whatever the rate frames arrived at. A signal
loss during a live recording is kept as a gap of the same length, opened by a "NO SIGNAL"
card and logged; a pause while reviewing a file is squeezed out. ``stop`` finishes the file
(temporary name, then rename); ``abort`` leaves no file under the final name.

A recording of a procedure cannot be made again, so what was recorded is kept whatever ends
it: the file is a fragmented MP4 (a fragment a second, flushed as it completes), so a full
disk mid-recording keeps every complete fragment under the final name (``stop`` then raises
:class:`RecordingCutShort`, which says where and how much), and a process that is killed
leaves a temporary file that plays up to its last fragment and that the next recording into
the same folder (or the next start of the app) recovers (:func:`polypvision.partials.sweep`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from polypvision.errors import OutputError
from polypvision.pipeline.compose import Compositor, LiveFrame
from polypvision.pipeline.engine import SinkWriter
from polypvision.pipeline.live import stall_after_s
from polypvision.recording import VideoWriter, check_output_path

log = logging.getLogger(__name__)

QUEUE_FRAMES = 64
STOP_TIMEOUT_S = 10.0


class RecordingCutShort(OutputError):
    """Writing failed mid-recording; what was recorded up to the last complete fragment is
    saved at ``path`` (None: nothing could be kept)."""

    def __init__(self, message: str, path: Path | None, seconds: float | None) -> None:
        super().__init__(message)
        self.path, self.seconds = path, seconds


def no_signal_card(width: int, height: int, seconds: float) -> np.ndarray:
    """The frame that opens a signal gap in a recording: dark, with the gap's length."""
    card = np.full((height, width, 3), 24, np.uint8)
    scale = max(0.5, min(width / 640.0, 3.0))
    for i, text in enumerate(("NO SIGNAL", f"{seconds:.1f} s")):
        size = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)[0]
        org = ((width - size[0]) // 2, height // 2 + int((i - 0.3) * 1.6 * size[1]) + size[1] // 2)
        cv2.putText(card, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (70, 90, 255), 2, cv2.LINE_AA)
    return card


class RecordingSink:
    """Draws each shown LiveFrame at full size and encodes it at its capture time."""

    name = "video"
    needs_image = False

    def __init__(self, video: VideoWriter, fps: float, live: bool) -> None:
        self.video, self.fps, self.live = video, fps, live
        self.gap_s = stall_after_s(fps)
        self.gaps: list[
            tuple[float, float]
        ] = []  # (seconds into the recording, length) of signal losses
        self._compositor = Compositor()
        self._t0: float | None = None
        self._t_prev = 0.0
        self._squeezed = 0.0  # seconds of pauses taken out of the timeline
        self.merged = 0  # frames that arrived faster than the recording's rate

    def _slot(self, t: float) -> int:
        t0 = self._t0 if self._t0 is not None else t
        return round((t - t0 - self._squeezed) * self.fps)

    def write(self, item: LiveFrame) -> None:
        t = item.frame.t_capture
        if self._t0 is None:
            self._t0 = self._t_prev = t
        gap = t - self._t_prev
        if gap > self.gap_s:
            if self.live:
                at = self._t_prev - self._t0 - self._squeezed
                self.gaps.append((at, gap))
                log.warning(
                    "recording %s: no signal for %.1f s, %.1f s into the recording",
                    self.video.path.name,
                    gap,
                    at,
                )
                h, w = item.frame.image.shape[:2]
                self.video.write_image(no_signal_card(w, h, gap), pts=self._slot(self._t_prev) + 1)
            else:
                self._squeezed += gap - 1.0 / self.fps
        self._t_prev = t
        slot = self._slot(t)
        if slot < self.video.next_pts - 1:
            # a source faster than its stated rate: keep the timeline, not the frame
            self.merged += 1
            return
        image = self._compositor.compose(item.frame.image, item.overlay, item.settings)
        self.video.write_image(image, pts=slot)

    def prepare(self, summary: dict[str, Any]) -> None:
        self.video.prepare()

    def publish(self) -> str:
        return self.video.publish()

    def abort(self) -> None:
        self.video.abort()


class Recorder:
    def __init__(self, path: Path, width: int, height: int, fps: float, live: bool = False) -> None:
        self.path = check_output_path(Path(path))
        self.sink = RecordingSink(
            VideoWriter(self.path, width, height, fps, fragmented=True), fps, live
        )
        self.writer = SinkWriter([self.sink], "pv-recorder", QUEUE_FRAMES, block=False).start()
        self.t_start = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t_start

    @property
    def frames(self) -> int:
        return self.sink.video.frames

    @property
    def dropped(self) -> int:
        return self.writer.dropped

    @property
    def error(self) -> BaseException | None:
        return self.writer.error

    @property
    def pending(self) -> int:
        return self.writer.queue.qsize()

    def submit(self, item: LiveFrame) -> None:
        self.writer.put(item)

    def stop(self) -> Path:
        """Finish the file and move it into place. If writing failed, keep what was recorded up
        to the last complete fragment and raise :class:`RecordingCutShort` saying so."""
        self.writer.close(STOP_TIMEOUT_S)
        if self.error is not None:
            seconds = self.sink.video.salvage()
            why = (
                str(self.error).split(": ", 1)[-1]
                if isinstance(self.error, OutputError)
                else str(self.error)
            )
            if seconds is None:
                raise RecordingCutShort(
                    f"recording to {self.path} failed ({why}); nothing was saved", None, None
                )
            raise RecordingCutShort(
                f"recording stopped: {why}; the first {seconds:.1f} s are saved in {self.path}",
                self.path,
                seconds,
            )
        self.sink.prepare({})
        return Path(self.sink.publish())

    def abort(self) -> None:
        self.writer.stop.set()
        self.writer.close(STOP_TIMEOUT_S)
        self.sink.abort()
