"""Filling the detection timeline for a whole clip in the background ("Scan clip").

While a clip plays, the timeline only knows the frames the model has seen. A scan runs the
headless :func:`~polypvision.pipeline.annotate.annotate` over a second copy of the source with
its own processor, and its only sink marks the track, so a reviewer can jump straight to every
finding. It competes with the live view for CPU, hence opt-in; cancel is an Event. Plain
Python: the callbacks are called on the worker thread (the window bridges them to Qt).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from polypvision.gui.player import DetectionTrack
from polypvision.pipeline.annotate import Progress, Sinks, annotate
from polypvision.pipeline.processor import FrameProcessor
from polypvision.sources import make_source
from polypvision.types import FrameResult

JOIN_TIMEOUT_S = 1.5


class _TrackSink:
    """Quacks like DetectionLog (write / prepare / publish / abort) so annotate() can feed the track."""

    def __init__(self, track: DetectionTrack) -> None:
        self.track = track
        self.path = "(timeline)"  # annotate() reports where its log went

    def write(self, result: FrameResult, processing_ms: float) -> None:
        self.track.mark(result)

    def prepare(self, summary: dict[str, Any]) -> None:
        pass

    def publish(self) -> None:
        pass

    def abort(self) -> None:
        pass


class ClipScan:
    def __init__(self, spec: str, processor: FrameProcessor, track: DetectionTrack, fps: float,
                 on_progress: Callable[[Progress], None], on_done: Callable[[BaseException | None], None]) -> None:
        p = processor
        self.processor = FrameProcessor(p.segmenter, p.smoothing, replace(p.style, enabled=False), None, p.threshold)
        self.spec, self.track, self.fps = spec, track, fps
        self.on_progress, self.on_done = on_progress, on_done
        self.cancel = threading.Event()
        self.thread = threading.Thread(target=self._run, name="pv-scan", daemon=True)

    def start(self) -> None:
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        self.cancel.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(JOIN_TIMEOUT_S)

    def _run(self) -> None:
        error: BaseException | None = None
        source = None
        try:
            source = make_source(self.spec, fps=self.fps)
            source.open()
            annotate(source, self.processor, Sinks(log=_TrackSink(self.track)), batch=4,  # type: ignore[arg-type]
                     cancel=self.cancel, progress=self.on_progress)
        except BaseException as exc:  # reported to the window (a cancel is not an error there)
            error = exc
        finally:
            if source is not None:
                source.close()
        self.on_done(error)
