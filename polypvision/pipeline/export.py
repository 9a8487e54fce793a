"""The one annotated-clip export: annotate, batch and the app's export all call :func:`export`.

It used to be assembled three times (the command, the batch job, the app's export job), and
the copies drifted apart: a batch wrote a PAL clip squashed (its pixel aspect dropped, while
its sidecar said 16:15), the app's sidecar named another ``style`` and ``blackout``, and only
one of them wrote the encoder preset it used. Here the source's pixel aspect, the encoder's
preset and quality, the field-of-view blackout, the sidecar and the per-frame log are decided
once; the doors differ only in where the outputs go, how progress is shown and what they add
to the sidecar (a batch's fingerprint, say).

:func:`verdict` is the one reading of whether an export is complete: the command's exit
status 3 and the batch's ``partial`` row both come from it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polypvision.pipeline.annotate import AnnotateReport, Sinks, annotate, log_sidecar
from polypvision.pipeline.engine import Progress
from polypvision.pipeline.processor import FrameProcessor
from polypvision.recording import DetectionLog, MaskWriter, VideoWriter
from polypvision.settings import ExportSettings, StreamSettings, style_names
from polypvision.sources.base import FrameSource

if TYPE_CHECKING:
    from polypvision.model.session import Segmenter

__all__ = ["ExportTargets", "export", "report_verdict", "verdict"]


@dataclass(frozen=True)
class ExportTargets:
    """Where one export writes: the video, and the per-frame log (with its sidecar) and the
    masks folder when asked. ``protect``: paths the masks folder must never replace."""

    video: Path
    log: Path | None = None
    masks: Path | None = None
    protect: tuple[Path, ...] = ()


def _blackout_for(source: FrameSource, stream: StreamSettings, settings: ExportSettings):
    """The stream's blackout: the one it already has (the app found it while playing), else,
    when asked, the field of view found in this source."""
    if stream.blackout is not None or not settings.blackout:
        return stream.blackout
    from polypvision.fov import Blackout, detect_fov_in

    fov = detect_fov_in(source)
    return Blackout(fov) if fov is not None else None


def export(
    source: FrameSource,
    input_spec: str,
    segmenter: Segmenter,
    stream: StreamSettings,
    settings: ExportSettings,
    targets: ExportTargets,
    *,
    sidecar_extra: Mapping[str, Any] | None = None,
    cancel: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    before_write: Callable[[], None] | None = None,
) -> AnnotateReport:
    """Export the open ``source`` (named ``input_spec`` by the user) with ``segmenter`` and the
    settings; close the source. Every output is published together or not at all.

    ``sidecar_extra`` is merged into the sidecar (its ``settings`` into the sidecar's settings);
    ``before_write`` runs just before the first temporary file is made (the command makes
    Ctrl-C clean up from there on). Raises what :func:`~polypvision.pipeline.annotate.annotate`
    raises, with every sink aborted.
    """
    sinks = Sinks()
    try:
        info = source.info if source.info is not None else source.open()
        stream = replace(stream, blackout=_blackout_for(source, stream, settings))
        processor = FrameProcessor(segmenter, settings=stream)
        if before_write is not None:
            before_write()
        sinks.video = VideoWriter(
            targets.video,
            info.width,
            info.height,
            info.fps,
            crf=settings.crf,
            preset=settings.encoder_preset,
            sar=info.extra.get("pixel_aspect"),
        )
        if targets.masks is not None:
            sinks.masks = MaskWriter(
                targets.masks, protect=(*targets.protect, targets.video, targets.log)
            )
        if targets.log is not None:
            sidecar = log_sidecar(
                input_spec,
                segmenter,
                info,
                processor,
                batch=settings.batch,
                style=style_names(stream.style),
                blackout=stream.blackout is not None,
                source=source,
                encoder_preset=settings.encoder_preset,
            )
            extra = dict(sidecar_extra or {})
            sidecar["settings"].update(extra.pop("settings", {}))
            sidecar.update(extra)
            sinks.log = DetectionLog(targets.log, sidecar)
        return annotate(
            source,
            processor,
            sinks,
            batch=settings.batch,
            cancel=cancel,
            progress=progress,
            strict=settings.strict,
        )
    except BaseException:
        for s in sinks.all():
            s.abort()
        raise
    finally:
        source.close()


def verdict(summary: Mapping[str, Any]) -> str | None:
    """None for a complete export; for a partial one (frames the input announced could not be
    decoded: a damaged or truncated recording) the words both the command and a batch say.

    ``summary`` is a report's or a sidecar's summary (``frames``, ``complete``,
    ``expected_frames``, ``unreadable``)."""
    if summary.get("complete", True):
        return None
    frames, expected = summary.get("frames", 0), summary.get("expected_frames")
    exp = f" of {expected}" if expected else ""
    return (
        f"PARTIAL: {frames}{exp} frames exported, {summary.get('unreadable', 0)} could not be "
        "decoded"
    )


def report_verdict(report: AnnotateReport) -> str | None:
    """:func:`verdict` of a finished export's report."""
    return verdict(
        {
            "frames": report.frames,
            "complete": report.complete,
            "expected_frames": report.expected,
            "unreadable": report.unreadable,
        }
    )
