"""One procedure, start to finish, in a worker: annotate unless done earlier, then report.

:func:`annotate_procedure` calls the one export (:func:`polypvision.pipeline.export.export`)
that ``polypvision annotate`` calls, so the batch's outputs are annotate's outputs, and its
verdict is annotate's: a recording ``annotate`` calls PARTIAL is ``partial`` here, not ``ok``.

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
from polypvision.batch.result import DONE_EARLIER, FAILED, OK, PARTIAL, ProcedureResult
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
    verdict: str | None = None  # None: complete; else what ``annotate`` says of a partial export


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

    The very export the command runs (:func:`polypvision.pipeline.export.export`); the sidecar
    gets ``sidecar_extra`` merged in (the event definition and the batch fingerprint).
    """
    from polypvision.pipeline.export import ExportTargets, export, report_verdict
    from polypvision.recording import check_output_path
    from polypvision.sources import make_source, source_kind

    if source_kind(source) in ("device", "stream", "synthetic", "demo"):
        raise UserError(f"batch annotates recordings; {source} is not a file or a folder of frames")
    in_path = Path(source)
    check_output_path(out.video, (in_path,))
    check_output_path(out.log, (in_path, out.video))
    seg = _segmenter(model_path, settings)
    src = make_source(source, fps=settings.export.fps)
    src.open()  # export() closes it
    targets = ExportTargets(
        out.video, out.log, out.masks if settings.masks else None, protect=(in_path,)
    )
    on_progress = None if progress is None else (lambda p: progress(p.done, p.total))
    report = export(
        src,
        source,
        seg,
        settings.stream,
        settings.export,
        targets,
        sidecar_extra=sidecar_extra,
        progress=on_progress,
    )
    return AnnotateOutcome(
        report.frames, report.provider, list(report.warnings), report_verdict(report)
    )


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
    # The summary's column says what ran (CPU or CUDA); why is said once for the run, and in each
    # report's "ran on" line, not in every row.
    full = str(sidecar.get("provider", ""))
    result.provider = full.split(" (", 1)[0]
    result.provider_detail = full
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
    from polypvision.pipeline.export import verdict
    from polypvision.report import report_is_current, write_report

    t0 = time.perf_counter()
    paths = OutputPaths(ctx.output_dir / proc.out_rel)
    result = ProcedureResult(proc.id, proc.label, proc.out_rel.as_posix(), FAILED)
    earlier_s: float | None = None
    try:
        paths.stem.parent.mkdir(parents=True, exist_ok=True)
        state = check_complete(paths, ctx.fingerprint, ctx.settings.masks)
        remove_partials(paths)  # an interrupted earlier attempt's hidden leftovers
        if state.complete:
            sidecar, records = state.sidecar, state.records
            said = verdict(sidecar.get("summary") or {})
            result.status = DONE_EARLIER if said is None else PARTIAL
            result.error = said or ""
            earlier_s = _earlier_seconds(sidecar)
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
            result.warnings, result.analysed_now = outcome.warnings, True
            sidecar = json.loads(paths.sidecar.read_text(encoding="utf-8"))
            records = read_log(paths.log)
            result.status = OK if outcome.verdict is None else PARTIAL
            result.error = outcome.verdict or ""
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
    # A procedure done earlier keeps that run's processing time (the driver prefers the earlier
    # summary's figure when there is one); this run only checked it.
    result.processing_s = earlier_s if earlier_s is not None else time.perf_counter() - t0
    result.worker_rss_mb = rss_mb()
    return result


def _earlier_seconds(sidecar: dict[str, Any]) -> float | None:
    """The export time an earlier run recorded in the sidecar's summary."""
    try:
        return float((sidecar.get("summary") or {})["seconds"])
    except (KeyError, TypeError, ValueError):
        return None


def _failed(result: ProcedureResult, message: str) -> None:
    result.status, result.error = FAILED, " ".join(message.split())


def worker_identity() -> dict[str, Any]:
    """What a worker runs (the driver warns when a cluster's workers run another version)."""
    return {"polypvision": __version__, "pid": os.getpid()}
