"""Offline export: every input frame out, in order, with the overlay burned in.

Three threads overlap the three costs: ``pv-reader`` decodes into a bounded queue, the
calling thread batches frames through the model and draws, ``pv-writer`` encodes and writes
the sinks. Queues block instead of dropping (an export never drops a frame); the bounds
keep memory flat. An exception in either worker stops the others and is re-raised in the
caller; cancel (an Event) and Ctrl-C abort every sink, which removes their temporary files.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from polypvision.errors import UserError
from polypvision.pipeline.processor import FrameProcessor
from polypvision.recording import DetectionLog, MaskWriter, VideoWriter
from polypvision.sources.base import FrameSource
from polypvision.types import Frame, FrameResult

log = logging.getLogger(__name__)

_END = object()
STOP_TIMEOUT_S = 2.0


class Cancelled(UserError):
    """The export was cancelled; nothing was written under the final names."""

    exit_code = 130


@dataclass
class Progress:
    done: int
    total: int | None
    fps: float
    elapsed_s: float

    @property
    def eta_s(self) -> float | None:
        if not self.total or self.fps <= 0:
            return None
        return max(self.total - self.done, 0) / self.fps


@dataclass
class AnnotateReport:
    frames: int
    seconds: float
    fps: float
    provider: str
    unreadable: int
    resized: int
    warnings: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    frames_with_polyp: int = 0


@dataclass
class Sinks:
    video: VideoWriter | None = None
    log: DetectionLog | None = None
    masks: MaskWriter | None = None

    def all(self) -> list[Any]:
        return [s for s in (self.video, self.log, self.masks) if s is not None]


class _Worker(threading.Thread):
    """A named thread that records its exception instead of dying silently."""

    def __init__(self, name: str, target: Callable[[], None], stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self._fn = target
        self._stop_event = stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:  # handed to the caller, who re-raises it
            self.error = exc
            self._stop_event.set()


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event) -> object:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _END


def annotate(source: FrameSource, processor: FrameProcessor, sinks: Sinks, *, batch: int = 4,
             cancel: threading.Event | None = None,
             progress: Callable[[Progress], None] | None = None) -> AnnotateReport:
    """Run the whole export. The source must be open. Commits or aborts every sink."""
    if batch < 1:
        raise UserError(f"batch size must be at least 1, got {batch}")
    stop = threading.Event()
    cancel = cancel or threading.Event()
    frames_q: queue.Queue = queue.Queue(maxsize=max(2 * batch, 4))
    results_q: queue.Queue = queue.Queue(maxsize=16)
    total = source.info.frame_count if source.info else None
    counters = {"polyp": 0}

    def read_loop() -> None:
        try:
            while not stop.is_set():
                frame = source.read()
                if frame is None:
                    break
                if not _put(frames_q, frame, stop):
                    return
        finally:
            _put(frames_q, _END, stop)

    def write_loop() -> None:
        while True:
            item = _get(results_q, stop)
            if item is _END or stop.is_set():  # stopped: the sinks are aborted, not drained into
                return
            res: FrameResult = item  # type: ignore[assignment]
            if sinks.video is not None:
                sinks.video.write(res.annotated)
            if sinks.log is not None:
                sinks.log.write(res, res.processing_ms)
            if sinks.masks is not None:
                sinks.masks.write(res)
            counters["polyp"] += res.detection.present

    reader, writer = _Worker("pv-reader", read_loop, stop), _Worker("pv-writer", write_loop, stop)
    t0 = time.perf_counter()
    done = 0
    try:
        reader.start()  # inside the try: Ctrl-C can land while a thread starts
        writer.start()
        ended = False
        while not ended:
            pending: list[Frame] = []
            while len(pending) < batch:
                item = _get(frames_q, stop)
                if item is _END:
                    ended = True
                    break
                pending.append(item)  # type: ignore[arg-type]
            if cancel.is_set():
                raise Cancelled("export cancelled; no output was written")
            for w in (reader, writer):
                if w.error is not None:
                    raise w.error
            if pending:
                for res in processor.process(pending):
                    if not _put(results_q, res, stop):
                        break
                done += len(pending)
                if progress is not None:
                    el = time.perf_counter() - t0
                    progress(Progress(done, total, done / el if el > 0 else 0.0, el))
        _put(results_q, _END, stop)
        writer.join()
        # The reader puts its end marker in ``finally`` before its error is recorded: wait for
        # it, or a decoder crash could be committed as a short export.
        reader.join(STOP_TIMEOUT_S)
        for w in (reader, writer):
            if w.error is not None:
                raise w.error
        if cancel.is_set():
            raise Cancelled("export cancelled; no output was written")
        if writer.error is not None:
            raise writer.error
        if reader.error is not None:
            raise reader.error
    except BaseException:
        stop.set()
        for w in (reader, writer):
            if w.ident is not None:  # started
                w.join(STOP_TIMEOUT_S)
        for s in sinks.all():
            s.abort()
        raise
    elapsed = time.perf_counter() - t0
    report = AnnotateReport(frames=done, seconds=elapsed, fps=done / elapsed if elapsed > 0 else 0.0,
                            provider=str(processor.segmenter.report), unreadable=source.unreadable,
                            resized=sinks.video.resized if sinks.video else 0,
                            warnings=list(source.warnings), frames_with_polyp=counters["polyp"])
    summary = {"frames": done, "frames_with_polyp": counters["polyp"], "unreadable": source.unreadable,
               "seconds": round(elapsed, 3), "fps": round(report.fps, 2), "warnings": report.warnings}
    try:
        # Two phases: complete every output under its temporary name, then rename them all, so
        # a late failure (disk full while flushing the video or writing the sidecar) leaves all
        # earlier outputs as they were instead of a new video beside an old log.
        if sinks.video is not None:
            sinks.video.prepare()
        if sinks.masks is not None:
            sinks.masks.prepare()
        if sinks.log is not None:
            sinks.log.prepare(summary)
        if sinks.video is not None:
            report.outputs["video"] = str(sinks.video.publish())
        if sinks.masks is not None:
            sinks.masks.publish()
            report.outputs["masks"] = str(sinks.masks.folder)
        if sinks.log is not None:
            sinks.log.publish()
            report.outputs["log"] = str(sinks.log.path)
    except BaseException:
        for s in sinks.all():
            s.abort()
        raise
    return report
