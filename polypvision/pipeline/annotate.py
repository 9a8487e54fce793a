"""Offline export (``polypvision annotate``): every input frame out, in order, overlay burned in.

The offline schedule itself (reader worker, model in the calling thread, writer worker,
bounded queues that never drop, cancel, abort, two-phase commit) is
:func:`polypvision.pipeline.engine.run_offline`; this module names the outputs and reports.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from polypvision.pipeline.engine import Cancelled, Incomplete, Progress, Sink, run_offline
from polypvision.pipeline.processor import FrameProcessor
from polypvision.recording import DetectionLog, MaskWriter, VideoWriter
from polypvision.sources.base import FrameSource

__all__ = ["AnnotateReport", "Cancelled", "Incomplete", "Progress", "Sinks", "annotate"]


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
    complete: bool = True  # False: frames the input announced could not be decoded (exit status 3)
    expected: int | None = None  # frames the input announced, when it says exactly
    facts: dict = field(default_factory=dict)  # timing, sizes, names, gaps: as in the sidecar's summary


@dataclass
class Sinks:
    """The export's outputs by name; published in this order (the log's sidecar comes last)."""

    video: VideoWriter | None = None
    log: DetectionLog | None = None
    masks: MaskWriter | None = None

    def all(self) -> list[Sink]:
        return [s for s in (self.video, self.masks, self.log) if s is not None]


def annotate(source: FrameSource, processor: FrameProcessor, sinks: Sinks, *, batch: int = 4,
             cancel: threading.Event | None = None,
             progress: Callable[[Progress], None] | None = None, strict: bool = False) -> AnnotateReport:
    """Run the whole export. The source must be open. Commits or aborts every sink.

    A partial export (the input announced frames that could not be decoded) is published with
    ``complete`` False, or, with ``strict``, not at all (:class:`Incomplete` is raised).
    """
    rep = run_offline(source, processor, sinks.all(), batch=batch, cancel=cancel, progress=progress, strict=strict)
    return AnnotateReport(frames=rep.frames, seconds=rep.seconds, fps=rep.fps, provider=str(processor.segmenter.report),
                          unreadable=rep.unreadable, resized=sinks.video.letterboxed if sinks.video else 0,
                          warnings=rep.warnings, outputs=rep.outputs, frames_with_polyp=rep.frames_with_polyp,
                          complete=rep.complete, expected=rep.expected, facts=rep.facts)
