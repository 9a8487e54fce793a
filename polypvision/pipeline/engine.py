"""The one pipeline engine: the workers, the sink interface and the offline schedule.

Every way PolypVision runs (``annotate``, the live view, the recorder, GUI export, the clip
scan, the detection log, the mask PNGs, the timeline) is built from these parts:

- :class:`Worker`: a named thread that captures its exception for whoever waits on it, stops
  through an Event and joins with a timeout. No other module starts pipeline threads.
- :class:`Sink`: one interface for every output (``write`` each item, then ``prepare`` and
  ``publish``, or ``abort``), written to by a :class:`SinkWriter` worker through a bounded
  queue that either blocks (exports: nothing is ever dropped) or drops and counts (the
  recorder: a slow disk never stalls the live view).
- :func:`run_offline`: the offline schedule. A reader worker decodes into a bounded queue, the
  calling thread runs the model in batches, the writer worker feeds the sinks: every frame,
  in order, with the three costs overlapped. An input that announced more frames than it
  delivered (a damaged or truncated file) makes a partial export: committed and reported as
  such, or, strict, not committed at all. The live schedule (newest frame wins at its one
  hand-off to the model) is :class:`polypvision.pipeline.live.LiveRunner`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from polypvision.errors import UserError
from polypvision.pipeline.processor import FrameProcessor
from polypvision.sources.base import FrameSource
from polypvision.types import Frame

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 2.0
POLL_S = 0.1
MAX_BATCH = 64  # frames per model call; each slot costs tens of MB of buffers at full size
_END = object()


class Cancelled(UserError):
    """The export was cancelled; nothing was written under the final names."""

    exit_code = 130


PARTIAL_EXIT = 3  # an export that was written but lacks frames the input announced


class Incomplete(UserError):
    """A strict export found frames missing from the input, so it published nothing."""

    exit_code = PARTIAL_EXIT


class Sink(Protocol):
    """An output. ``write`` gets each item in order on the writer's thread; then either
    ``prepare`` (complete it under a temporary name) followed by ``publish`` (move it into
    place, return where it went), or ``abort`` (remove every trace; safe to call twice)."""

    name: str  # "video", "log", "masks", "timeline", ...
    needs_image: bool  # write() reads result.annotated, so the offline schedule draws it

    def write(self, item: Any) -> None: ...

    def prepare(self, summary: dict[str, Any]) -> None: ...

    def publish(self) -> str | None: ...

    def abort(self) -> None: ...


class Worker:
    """A named daemon thread whose exception is kept for the caller instead of being lost.

    On an exception the shared ``stop`` Event is set (the other workers wind down) and
    ``on_error`` is called once, unless the stop was already requested (an error while
    stopping is a consequence, not news). ``on_exit`` runs last, after the error is recorded,
    so whoever sees its effect (an end marker) also sees the error.
    """

    def __init__(
        self,
        name: str,
        fn: Callable[[], None],
        stop: threading.Event | None = None,
        *,
        on_error: Callable[[BaseException], None] | None = None,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self.name, self.fn = name, fn
        self.stop = stop if stop is not None else threading.Event()
        self.on_error, self.on_exit = on_error, on_exit
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Worker:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            self.fn()
        except BaseException as exc:  # kept for the caller, who re-raises or reports it
            stopping = self.stop.is_set()
            self.error = exc
            self.stop.set()
            if not stopping:
                log.debug("%s failed: %s", self.name, exc)
                if self.on_error is not None:
                    self.on_error(exc)
        finally:
            if self.on_exit is not None:
                self.on_exit()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    @property
    def started(self) -> bool:
        return self.thread.ident is not None

    def join(self, timeout_s: float | None = STOP_TIMEOUT_S) -> bool:
        """Wait for the thread (never for itself; None: as long as it takes);
        True when it has ended."""
        if self.started and self.thread is not threading.current_thread():
            self.thread.join(timeout_s)
        return not self.thread.is_alive()


def join_all(workers: Sequence[Worker], timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Join every worker within one shared deadline; True when all have ended."""
    deadline = time.perf_counter() + timeout_s
    return all([w.join(max(0.0, deadline - time.perf_counter())) for w in workers])


def raise_first_error(workers: Sequence[Worker]) -> None:
    for w in workers:
        if w.error is not None:
            raise w.error


def put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Block until ``item`` is queued (True) or ``stop`` is set (False)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            continue
    return False


def get(q: queue.Queue, stop: threading.Event) -> object:
    """The next item, or the end marker once ``stop`` is set and nothing is left."""
    while True:
        try:
            return q.get(timeout=POLL_S)
        except queue.Empty:
            if stop.is_set():
                return _END


class SinkWriter:
    """A writer worker: items through a bounded queue into sinks, in order.

    ``block=True`` (exports): ``put`` waits for room, nothing is dropped. ``block=False``
    (recording the live view): a full queue drops the item and counts it, so a slow disk
    shows up as a number instead of a frozen picture. After ``stop`` the writer leaves at the
    item it is on: the sinks are then aborted, never written into while closing.
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        name: str,
        maxsize: int,
        stop: threading.Event | None = None,
        block: bool = True,
    ) -> None:
        self.sinks, self.block = list(sinks), block
        self.queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self.dropped = 0
        self.written = 0
        self.worker = Worker(name, self._loop, stop)

    @property
    def stop(self) -> threading.Event:
        return self.worker.stop

    @property
    def error(self) -> BaseException | None:
        return self.worker.error

    def start(self) -> SinkWriter:
        self.worker.start()
        return self

    def put(self, item: object) -> bool:
        if self.block:
            return put(self.queue, item, self.stop)
        if self.stop.is_set():
            return False
        try:
            self.queue.put_nowait(item)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def _loop(self) -> None:
        while True:
            item = get(self.queue, self.stop)
            if item is _END or self.stop.is_set():
                return
            for s in self.sinks:
                s.write(item)
            self.written += 1

    def close(self, timeout_s: float | None = None) -> bool:
        """Let the queued items through, then end the worker (None: however long the sinks
        take, as an export must); True when it has ended."""
        if self.worker.started and self.worker.alive:
            put(self.queue, _END, self.stop)
        return self.worker.join(timeout_s)


def abort_all(sinks: Sequence[Sink]) -> None:
    for s in sinks:
        s.abort()


def commit_all(sinks: Sequence[Sink], summary: dict[str, Any]) -> dict[str, str]:
    """Two phases: complete every output under its temporary name, then rename them all, so a
    late failure (disk full while flushing the video or writing the sidecar) leaves all earlier
    outputs as they were instead of a new video beside an old log."""
    try:
        for s in sinks:
            s.prepare(summary)
        outputs = {}
        for s in sinks:
            where = s.publish()
            if where is not None:
                outputs[s.name] = where
        return outputs
    except BaseException:
        abort_all(sinks)
        raise


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
class OfflineReport:
    frames: int
    seconds: float
    frames_with_polyp: int
    unreadable: int
    warnings: list[str] = field(default_factory=list)
    polyp_frames: list[int] = field(default_factory=list)  # indices of the frames alarmed
    outputs: dict[str, str] = field(default_factory=dict)
    expected: int | None = None  # frames the input announced (a video's index, a folder's files)
    facts: dict[str, Any] = field(default_factory=dict)  # about the input and how it was written

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        """Every frame the input announced came out (a damaged or truncated input: False)."""
        return self.unreadable == 0 and (self.expected is None or self.frames >= self.expected)

    def describe_partial(self) -> str:
        exp = f" of {self.expected}" if self.expected else ""
        return f"partial export: {self.frames}{exp} frames, {self.unreadable} could not be decoded"

    def summary(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "complete": self.complete,
            "expected_frames": self.expected,
            "frames_with_polyp": self.frames_with_polyp,
            "unreadable": self.unreadable,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "warnings": self.warnings,
            **self.facts,
        }


def run_offline(
    source: FrameSource,
    processor: FrameProcessor,
    sinks: Sequence[Sink],
    *,
    batch: int = 4,
    cancel: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    strict: bool = False,
) -> OfflineReport:
    """Every frame of an open source through ``processor`` into ``sinks``, then commit them all.

    Raises :class:`Cancelled` when ``cancel`` is set, or a worker's exception; either way every
    sink is aborted and nothing appears under a final name. A partial export (frames the input
    announced could not be decoded) is committed and reported (``complete`` is False), unless
    ``strict``: then it raises :class:`Incomplete` and nothing is published.
    """
    if not 1 <= batch <= MAX_BATCH:
        raise UserError(f"batch size must be at least 1 and at most {MAX_BATCH}, got {batch}")
    stop, cancel = threading.Event(), cancel or threading.Event()
    frames_q: queue.Queue = queue.Queue(maxsize=max(2 * batch, 4))
    render = any(s.needs_image for s in sinks)
    total = source.info.frame_count if source.info else None

    def read_loop() -> None:
        while not stop.is_set():
            frame = source.read()
            if frame is None or not put(frames_q, frame, stop):
                return

    # The end marker goes in only after an error is recorded: a decoder crash is never
    # mistaken for the end of the input and committed as a short export.
    def end_marker() -> None:
        put(frames_q, _END, stop)

    reader = Worker("pv-reader", read_loop, stop, on_exit=end_marker)
    writer = SinkWriter(sinks, "pv-writer", 16, stop)
    workers = [reader, writer.worker]
    report = OfflineReport(0, 0.0, 0, 0)
    t0 = time.perf_counter()
    try:
        reader.start()  # inside the try: Ctrl-C can land while a thread starts
        writer.start()
        ended = False
        while not ended:
            pending: list[Frame] = []
            while len(pending) < batch and not ended:
                item = get(frames_q, stop)
                ended = item is _END
                if not ended:
                    pending.append(item)  # type: ignore[arg-type]
            if cancel.is_set():
                raise Cancelled("export cancelled; no output was written")
            raise_first_error(workers)
            for res in processor.process(pending, render=render) if pending else ():
                if res.detection.present:
                    report.frames_with_polyp += 1
                    report.polyp_frames.append(res.index)
                if not writer.put(res):
                    break
            report.frames += len(pending)
            if progress is not None and pending:
                el = time.perf_counter() - t0
                progress(Progress(report.frames, total, report.frames / el if el > 0 else 0.0, el))
        writer.close()
        reader.join()
        raise_first_error(workers)
        if cancel.is_set():
            raise Cancelled("export cancelled; no output was written")
    except BaseException:
        stop.set()
        join_all(workers)
        abort_all(sinks)
        raise
    report.seconds = time.perf_counter() - t0
    report.unreadable, report.warnings = source.unreadable, list(source.warnings)
    # Sources that only quack like a FrameSource (a bench's frame limiter) announce nothing.
    report.expected = getattr(source, "expected_frames", lambda: None)()
    report.facts = dict(getattr(source, "facts", dict)())
    for s in sinks:
        facts = getattr(s, "facts", None)
        if callable(facts):
            report.facts.update(facts())
    if strict and not report.complete:
        abort_all(sinks)
        raise Incomplete(
            f"{report.describe_partial()}; --strict: nothing was written "
            "(earlier outputs are untouched; leave out --strict to export the decodable frames)"
        )
    report.outputs = commit_all(sinks, report.summary())
    return report
