"""Recording the live view to H.264: a sink behind a non-blocking writer worker.

The live view hands every picture it shows to :meth:`Recorder.submit`, which never blocks: a
:class:`~polypvision.pipeline.engine.SinkWriter` (bounded queue, one worker) draws the overlay
at full size and encodes, and if the disk cannot keep up a frame is dropped from the file and
counted rather than stalling the picture. Each frame is stamped with its capture time, so the
file keeps the timeline of what was on screen whatever the rate frames arrived at. A signal
loss during a live recording is kept as a gap of the same length, opened by a "NO SIGNAL"
card and logged; the user's pause of a live view keeps its length too, without a card or a
warning (the frozen picture is what was on screen), and a pause while reviewing a file is
squeezed out. ``stop`` waits for the writer (a disk slower than that is stopped at the frame it
is on, the rest counted as not written), finishes the file (temporary name, then rename) and
writes its sidecar (``NAME.meta.json``: rate, signal gaps, pauses and every frame lost, by
cause), and :meth:`Recorder.loss_text` says what the file lacks; ``abort`` leaves no file under
the final name.

A recording of a procedure cannot be made again, so what was recorded is kept whatever ends
it: the file is a fragmented MP4 (a fragment a second, flushed as it completes), so a full
disk mid-recording keeps every complete fragment under the final name (``stop`` then raises
:class:`RecordingCutShort`, which says where and how much), and a process that is killed
leaves a temporary file that plays up to its last fragment and that the next recording into
the same folder (or the next start of the app) recovers (:func:`polypvision.partials.sweep`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from polypvision.errors import OutputError
from polypvision.fileio import write_text
from polypvision.pipeline.compose import Compositor, LiveFrame
from polypvision.pipeline.engine import SinkWriter
from polypvision.pipeline.live import stall_after_s
from polypvision.recording import VideoWriter, check_output_path, sidecar_path

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


class Shown(NamedTuple):
    """One picture handed to the recorder; ``after_pause``: the first one after the user paused
    the live view, so the time since the previous picture is a pause, not a signal loss."""

    item: LiveFrame
    after_pause: bool = False


class RecordingSink:
    """Draws each shown LiveFrame at full size and encodes it at its capture time."""

    name = "video"
    needs_image = False

    def __init__(self, video: VideoWriter, fps: float, live: bool) -> None:
        self.video, self.fps, self.live = video, fps, live
        self.gap_s = stall_after_s(fps)
        # (seconds into the recording, length) of signal losses, and of the user's pauses
        self.gaps: list[tuple[float, float]] = []
        self.pauses: list[tuple[float, float]] = []
        self._compositor = Compositor()
        self._t0: float | None = None
        self._t_prev = 0.0
        self._squeezed = 0.0  # seconds of pauses taken out of the timeline
        self.merged = 0  # frames that arrived faster than the recording's rate

    def _slot(self, t: float) -> int:
        t0 = self._t0 if self._t0 is not None else t
        return round((t - t0 - self._squeezed) * self.fps)

    def write(self, entry: LiveFrame | Shown) -> None:
        item, after_pause = entry if isinstance(entry, Shown) else (entry, False)
        t = item.frame.t_capture
        if self._t0 is None:
            self._t0 = self._t_prev = t
        gap = t - self._t_prev
        at = self._t_prev - self._t0 - self._squeezed
        if self.live and after_pause:
            # A live pause keeps the procedure's clock: the frozen picture stays on screen for
            # the pause's length (it is not repeated), and the sidecar says when and how long.
            self.pauses.append((at, gap))
        elif gap > self.gap_s:
            if self.live:
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


def _frames(n: int) -> str:
    return f"{n} frame{'' if n == 1 else 's'}"


class Recorder:
    """The live view's recording: ``submit`` never blocks; ``stop`` finishes the file, writes
    its sidecar (``NAME.meta.json``: rate, gaps, pauses and what was lost) and says in
    :meth:`loss_text` what the file does not hold, so "saved" is never said of a file that is
    missing frames without saying which."""

    def __init__(self, path: Path, width: int, height: int, fps: float, live: bool = False) -> None:
        self.path = check_output_path(Path(path))
        self.fps, self.live = fps, live
        self.sink = RecordingSink(
            VideoWriter(self.path, width, height, fps, fragmented=True), fps, live
        )
        self.writer = SinkWriter([self.sink], "pv-recorder", QUEUE_FRAMES, block=False).start()
        self.t_start = time.perf_counter()
        self.submitted = 0
        self.unwritten = 0  # queued when the recording stopped, and never written
        self._after_pause = False
        self._source_dropped: tuple[int, int] | None = None  # (at the start, latest)

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

    def pause(self) -> None:
        """The user paused the live view: the next picture comes after a pause, not a loss."""
        self._after_pause = True

    def submit(self, item: LiveFrame, dropped: int | None = None) -> None:
        """Queue one shown picture (never blocks). ``dropped``: the live view's count of video
        frames lost so far, so the recording can say how many it never received."""
        if dropped is not None:
            first = self._source_dropped[0] if self._source_dropped is not None else dropped
            self._source_dropped = (first, dropped)
        after = self._after_pause
        if self.writer.put(Shown(item, after)):
            self.submitted += 1
            if after:
                self._after_pause = False

    def losses(self) -> dict[str, int]:
        """Frames the file does not hold, by cause (the sidecar's ``lost``)."""
        sd = self._source_dropped
        return {
            "dropped_by_the_writer": self.writer.dropped,
            "unwritten": self.unwritten,
            "merged": self.sink.merged,
            "dropped_at_the_source": (sd[1] - sd[0]) if sd is not None else 0,
        }

    def lost_so_far(self) -> int:
        """Frames the file will not hold, counted while it records (the record bar shows it live,
        so a loss is seen when it happens, not first in the stop message)."""
        return sum(self.losses().values())

    def loss_text(self) -> str:
        """What the recording lost, in one line for the stop message ('' when nothing)."""
        lost = self.losses()
        parts = []
        if lost["dropped_by_the_writer"]:
            parts.append(
                f"{_frames(lost['dropped_by_the_writer'])} dropped (the disk could not keep up)"
            )
        if lost["unwritten"]:
            parts.append(
                f"the last {_frames(lost['unwritten'])} not written (the disk had not taken them "
                "when the recording stopped)"
            )
        if lost["dropped_at_the_source"]:
            parts.append(
                f"{_frames(lost['dropped_at_the_source'])} never shown (lost on the way "
                "from the source)"
            )
        if lost["merged"]:
            parts.append(
                f"{_frames(lost['merged'])} merged (they came faster than {self.fps:g} fps)"
            )
        if self.sink.gaps:
            total = sum(g for _, g in self.sink.gaps)
            n = len(self.sink.gaps)
            parts.append(f"{total:.1f} s without signal ({n} gap{'' if n == 1 else 's'})")
        return "; ".join(parts)

    def sidecar(self) -> dict[str, Any]:
        """What the sidecar says: the rate, the frames, the gaps, the pauses, what was lost."""
        return {
            "video": self.path.name,
            "fps": self.fps,
            "frames": self.frames,
            "live": self.live,
            "signal_gaps": [
                {"at_s": round(a, 3), "length_s": round(g, 3)} for a, g in self.sink.gaps
            ],
            "pauses": [{"at_s": round(a, 3), "length_s": round(g, 3)} for a, g in self.sink.pauses],
            "lost": self.losses(),
            "lost_text": self.loss_text(),
        }

    def _finish_writer(self) -> bool:
        """Let the queue drain; a disk slower than that is stopped at the frame it is on (the
        frames still queued are counted as not written). True when the writer has ended: only
        then may the encoder be closed (closing it under an encode crashes PyAV)."""
        ended = self.writer.close(STOP_TIMEOUT_S)
        if not ended:
            self.writer.stop.set()
            ended = self.writer.worker.join(STOP_TIMEOUT_S)
        self.unwritten = max(0, self.submitted - self.writer.written) if ended else 0
        return ended

    def stop(self) -> Path:
        """Finish the file and move it into place, with its sidecar. If writing failed, keep
        what was recorded up to the last complete fragment and raise
        :class:`RecordingCutShort` saying so."""
        if not self._finish_writer():
            raise RecordingCutShort(
                f"recording to {self.path} did not finish: the disk has taken no frame for "
                f"{2 * STOP_TIMEOUT_S:.0f} s; what was written is recovered when the app next "
                "starts",
                None,
                None,
            )
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
            self._write_sidecar()
            raise RecordingCutShort(
                f"recording stopped: {why}; the first {seconds:.1f} s are saved in {self.path}",
                self.path,
                seconds,
            )
        self.sink.prepare({})
        path = Path(self.sink.publish())
        self._write_sidecar()
        return path

    def _write_sidecar(self) -> None:
        """The video is what matters: a sidecar that cannot be written is logged, not fatal."""
        side = sidecar_path(self.path)
        try:
            write_text(side, json.dumps(self.sidecar(), indent=1) + "\n")
        except OSError as exc:
            log.warning("cannot write %s: %s", side, exc.strerror or exc)

    def abort(self) -> None:
        self.writer.stop.set()
        self.writer.close(STOP_TIMEOUT_S)
        self.sink.abort()
