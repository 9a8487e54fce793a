"""One procedure, start to finish, inside a worker: skip if complete, else annotate, then report.

:func:`annotate_procedure` is the only place that touches the annotate pipeline's internals
(source, processor, sinks, ``annotate()``); it does what ``polypvision annotate`` does for one
input, so the batch's outputs are annotate's outputs. When the pipeline's structure changes,
only that function follows it.

:func:`run_job` never raises for a bad procedure: every failure becomes a ``failed`` result with
a one-line error, so one damaged recording never stops the others. Only an interrupt
(``KeyboardInterrupt``, which the engines raise on SIGTERM) propagates, after annotate has
removed its temporary files.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polypvision import __version__
from polypvision.batch.discover import Procedure
from polypvision.batch.outputs import OutputPaths, check_complete, remove_partials
from polypvision.batch.result import FAILED, OK, SKIPPED, ProcedureResult
from polypvision.batch.settings import AnnotateSettings, JobContext
from polypvision.errors import UserError
from polypvision.events import EventSettings, PolypEvent, event_settings_of, find_events, read_log

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, "int | None"], None]  # frames done, frames in total (if known)
JobFn = Callable[[Procedure, JobContext, "ProgressFn | None"], ProcedureResult]

# One model session per worker process, reused across its procedures (loading it per procedure
# costs time and, with some allocators, memory that is never handed back).
_SEGMENTERS: dict[tuple[str, str, int | None, int], Any] = {}


@dataclass
class AnnotateOutcome:
    frames: int
    provider: str
    warnings: list[str] = field(default_factory=list)


def apply_thread_budget(threads: int | None) -> None:
    """Keep a worker to its share of the cores (OpenCV's pool; onnxruntime gets it per session)."""
    if not threads:
        return
    import cv2

    cv2.setNumThreads(threads)


def _segmenter(model_path: Path, settings: AnnotateSettings):
    from polypvision.model.session import Segmenter

    key = (str(model_path), settings.provider, settings.threads, settings.batch)
    seg = _SEGMENTERS.get(key)
    if seg is None:
        _SEGMENTERS.clear()
        seg = Segmenter(model_path, settings.provider, settings.threads, max_batch=settings.batch)
        _SEGMENTERS[key] = seg
    return seg


def annotate_procedure(
    source: str,
    out: OutputPaths,
    model_path: Path,
    settings: AnnotateSettings,
    sidecar_extra: dict[str, Any],
    progress: ProgressFn | None = None,
) -> AnnotateOutcome:
    """``polypvision annotate SOURCE -o <stem>.mp4 --log <stem>.jsonl [--masks <stem>_masks]``.

    The same sources, processor, sinks and two-phase commit as the command; the sidecar gets
    ``sidecar_extra`` merged in (the event definition and the batch fingerprint).
    """
    from polypvision.cli import _sidecar, make_processor
    from polypvision.fov import Blackout, detect_fov_in
    from polypvision.pipeline.annotate import Sinks, annotate
    from polypvision.recording import DetectionLog, MaskWriter, VideoWriter, check_output_path
    from polypvision.sources import make_source, source_kind

    if source_kind(source) in ("device", "stream", "synthetic", "demo"):
        raise UserError(f"batch annotates recordings; {source} is not a file or a folder of frames")
    masks = out.masks if settings.masks else None
    args = settings.namespace(source, model_path, out.video, out.log, masks)
    in_path = Path(source)
    check_output_path(out.video, (in_path,))
    check_output_path(out.log, (in_path, out.video))
    src = make_source(source, fps=settings.fps)
    src.open()
    sinks = Sinks()
    try:
        seg = _segmenter(model_path, settings)
        blackout = None
        if settings.blackout:
            fov = detect_fov_in(src)
            blackout = Blackout(fov) if fov is not None else None
        processor = make_processor(args, seg, blackout)
        info = src.info
        assert info is not None  # opened above
        sinks.video = VideoWriter(
            out.video, info.width, info.height, info.fps, preset=settings.encoder_preset
        )
        if masks is not None:
            sinks.masks = MaskWriter(masks, protect=(in_path, out.video, out.log))
        extra = dict(sidecar_extra)
        sidecar = _sidecar(args, seg, info, processor)
        sidecar["settings"].update(extra.pop("settings", {}))
        sidecar.update(extra)
        sinks.log = DetectionLog(out.log, sidecar)
        on_progress = None if progress is None else (lambda p: progress(p.done, p.total))
        report = annotate(src, processor, sinks, batch=settings.batch, progress=on_progress)
    except BaseException:
        for s in sinks.all():
            s.abort()
        raise
    finally:
        src.close()
    return AnnotateOutcome(report.frames, report.provider, list(report.warnings))


# -- the job ---------------------------------------------------------------------------------------
def rss_mb() -> float:
    """Resident memory of this process now (Linux), else its peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fill(
    result: ProcedureResult,
    sidecar: dict[str, Any],
    records: list[dict[str, Any]],
    events: EventSettings,
) -> list[PolypEvent]:
    """The summary figures, from the outputs themselves (the report uses the same function)."""
    from polypvision.report import figures

    found = find_events(records, events, (sidecar.get("source") or {}).get("fps"))
    for k, v in figures(sidecar, records, found).items():
        setattr(result, k, v)
    result.provider = str(sidecar.get("provider", ""))
    if not result.warnings:
        result.warnings = list((sidecar.get("summary") or {}).get("warnings") or [])
    return found


def _record_event_settings(
    paths: OutputPaths, sidecar: dict[str, Any], events: EventSettings
) -> None:
    """A complete procedure re-counted with another event definition: the sidecar says which one."""
    if event_settings_of(sidecar) == events and "events" in (sidecar.get("settings") or {}):
        return
    from polypvision.fileio import write_text

    sidecar.setdefault("settings", {})["events"] = events.to_dict()
    write_text(paths.sidecar, json.dumps(sidecar, indent=2))


def _sidecar_extra(proc: Procedure, ctx: JobContext) -> dict[str, Any]:
    return {
        "settings": {"events": ctx.events.to_dict()},
        "batch": {
            "fingerprint": ctx.fingerprint,
            "model_sha256": ctx.model_sha256,
            "source": proc.label,
            "output": proc.out_rel.as_posix(),
        },
    }


def run_job(
    proc: Procedure, ctx: JobContext, progress: ProgressFn | None = None
) -> ProcedureResult:
    """Bring one procedure's outputs and report up to date; a result whatever happens."""
    from polypvision.report import report_is_current, write_report

    t0 = time.perf_counter()
    paths = OutputPaths(ctx.output_dir / proc.out_rel)
    result = ProcedureResult(proc.id, proc.label, proc.out_rel.as_posix(), FAILED)
    try:
        paths.stem.parent.mkdir(parents=True, exist_ok=True)
        state = check_complete(paths, ctx.fingerprint, ctx.settings.masks)
        remove_partials(paths)  # an interrupted earlier attempt's hidden leftovers
        if state.complete:
            result.status, sidecar, records = SKIPPED, state.sidecar, state.records
        else:
            if state.reason != "not done yet":
                log.info("%s: redoing (%s)", proc.label, state.reason)
            outcome = annotate_procedure(
                proc.source,
                paths,
                ctx.model_path,
                ctx.settings,
                _sidecar_extra(proc, ctx),
                progress,
            )
            result.warnings = outcome.warnings
            sidecar = json.loads(paths.sidecar.read_text(encoding="utf-8"))
            records = read_log(paths.log)
            result.status = OK
        events = _fill(result, sidecar, records, ctx.events)
        _record_event_settings(paths, sidecar, ctx.events)
        if not report_is_current(paths.report, sidecar, ctx.events):
            write_report(
                paths.report, paths.video, sidecar, records, events, ctx.events, proc.label
            )
        result.report = Path(proc.out_rel.as_posix() + ".report.html").as_posix()
    except UserError as exc:
        _failed(result, str(exc))
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        _failed(result, f"{exc.strerror or exc}{where}")
    except Exception as exc:  # a bug, or a library's complaint about this one input
        _failed(
            result,
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
        )
        result.detail = traceback.format_exc()
    result.processing_s = time.perf_counter() - t0
    result.worker_rss_mb = rss_mb()
    return result


def _failed(result: ProcedureResult, message: str) -> None:
    result.status, result.error = FAILED, " ".join(message.split())


def worker_identity() -> dict[str, Any]:
    """What a worker runs (the driver warns when a cluster's workers run another version)."""
    return {"polypvision": __version__, "pid": os.getpid()}
