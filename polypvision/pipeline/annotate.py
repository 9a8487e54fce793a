"""Offline export (``polypvision annotate``): every input frame out, in order, overlay burned in.

The offline schedule itself (reader worker, model in the calling thread, writer worker,
bounded queues that never drop, cancel, abort, two-phase commit) is
:func:`polypvision.pipeline.engine.run_offline`; this module names the outputs and reports.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polypvision.pipeline.engine import Cancelled, Incomplete, Progress, Sink, run_offline
from polypvision.pipeline.processor import FrameProcessor
from polypvision.recording import DetectionLog, MaskWriter, VideoWriter
from polypvision.settings import style_names  # importable from here as before
from polypvision.sources.base import FrameSource
from polypvision.types import SourceInfo

if TYPE_CHECKING:
    from polypvision.model.session import Segmenter

__all__ = [
    "AnnotateReport",
    "Cancelled",
    "Incomplete",
    "Progress",
    "Sinks",
    "annotate",
    "log_sidecar",
    "style_names",
]


def _json_safe(value: Any) -> Any:
    if isinstance(value, Fraction):
        return f"{value.numerator}:{value.denominator}"
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def log_sidecar(
    input_spec: str,
    seg: Segmenter,
    info: SourceInfo,
    processor: FrameProcessor,
    *,
    batch: int,
    style: str,
    blackout: bool,
    source: FrameSource | None = None,
    encoder_preset: str | None = None,
) -> dict[str, Any]:
    """The detection log's sidecar: what was read, the model and its contract, the settings.

    ``source`` (the opened FrameSource) names what was really read: the input string may be a
    keyword, a file named like one, or a pattern. Every export path writes it through
    :func:`polypvision.pipeline.export.export`, so a report (:mod:`polypvision.report`) reads any.
    """
    from polypvision import __version__
    from polypvision.sources import source_kind

    kind = source_kind(input_spec)
    if source is not None:
        read = getattr(source, "path", None) or getattr(source, "spec", None)
    else:
        read = input_spec if kind in ("file", "frames") else None
    return {
        "software": {"polypvision": __version__},
        "input": str(input_spec),
        "input_kind": kind,
        "input_read": str(Path(read).resolve()) if read is not None else info.description,
        "source": _json_safe(asdict(info)),
        "model": {"path": str(seg.path), "contract": seg.contract.to_dict()},
        "provider": str(seg.report),
        "settings": {
            "batch": batch,
            "threshold": processor.threshold,
            "smoothing": asdict(processor.smoothing),
            "style": style,
            "blackout": blackout,
            **({"encoder_preset": encoder_preset} if encoder_preset is not None else {}),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


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
    polyp_frames: list[int] = field(default_factory=list)  # indices of the frames alarmed
    complete: bool = True  # False: frames the input announced could not be decoded (exit status 3)
    expected: int | None = None  # frames the input announced, when it says exactly
    facts: dict = field(
        default_factory=dict
    )  # timing, sizes, names, gaps: as in the sidecar's summary


@dataclass
class Sinks:
    """The export's outputs by name; published in this order (the log's sidecar comes last)."""

    video: VideoWriter | None = None
    log: DetectionLog | None = None
    masks: MaskWriter | None = None

    def all(self) -> list[Sink]:
        return [s for s in (self.video, self.masks, self.log) if s is not None]


def annotate(
    source: FrameSource,
    processor: FrameProcessor,
    sinks: Sinks,
    *,
    batch: int = 4,
    cancel: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    strict: bool = False,
) -> AnnotateReport:
    """Run the whole export. The source must be open. Commits or aborts every sink.

    A partial export (the input announced frames that could not be decoded) is published with
    ``complete`` False, or, with ``strict``, not at all (:class:`Incomplete` is raised).
    """
    rep = run_offline(
        source, processor, sinks.all(), batch=batch, cancel=cancel, progress=progress, strict=strict
    )
    return AnnotateReport(
        frames=rep.frames,
        seconds=rep.seconds,
        fps=rep.fps,
        provider=str(processor.segmenter.report),
        unreadable=rep.unreadable,
        resized=sinks.video.letterboxed if sinks.video else 0,
        warnings=rep.warnings,
        outputs=rep.outputs,
        frames_with_polyp=rep.frames_with_polyp,
        polyp_frames=rep.polyp_frames,
        complete=rep.complete,
        expected=rep.expected,
        facts=rep.facts,
    )
