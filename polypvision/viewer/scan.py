"""Filling the detection timeline for a whole clip in the background ("Scan clip").

While a clip plays, the timeline only knows the frames the model has seen. A scan runs the
offline schedule over a second copy of the source with its own stream state (a clone of the
playing one, overlay off) and the track as its only sink, so a reviewer can jump straight to
every finding. It competes with the live view for CPU, hence opt-in; cancel is an Event.
Plain Python: the callbacks are called on the worker (the window bridges them to Qt).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

from polypvision.pipeline.engine import Progress, Worker, run_offline
from polypvision.pipeline.processor import FrameProcessor
from polypvision.pipeline.track import DetectionTrack
from polypvision.sources import make_source

JOIN_TIMEOUT_S = 1.5


class ClipScan:
    def __init__(
        self,
        spec: str,
        processor: FrameProcessor,
        track: DetectionTrack,
        fps: float,
        on_progress: Callable[[Progress], None],
        on_done: Callable[[BaseException | None], None],
    ) -> None:
        self.processor = processor.clone(
            style=replace(processor.style, enabled=False), blackout=None
        )
        self.spec, self.track, self.fps = spec, track, fps
        self.on_progress, self.on_done = on_progress, on_done
        self.cancel = threading.Event()
        self.worker = Worker("pv-scan", self._run, on_exit=self._finished)

    def start(self) -> None:
        self.worker.start()

    @property
    def running(self) -> bool:
        return self.worker.alive

    def stop(self) -> None:
        self.cancel.set()
        self.worker.join(JOIN_TIMEOUT_S)

    def _run(self) -> None:
        source = make_source(self.spec, fps=self.fps)
        source.open()
        try:
            run_offline(
                source,
                self.processor,
                [self.track],
                batch=4,
                cancel=self.cancel,
                progress=self.on_progress,
            )
        finally:
            source.close()

    def _finished(self) -> None:
        self.on_done(self.worker.error)  # None when it ran to the end; Cancelled when stopped
