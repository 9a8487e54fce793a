"""The app's "Export annotated clip": the one export on a worker, with progress and cancel.

The export opens its own copy of the source and runs a clone of the playing stream's state
(same model and settings, its own buffers and smoother), so it neither disturbs nor is
disturbed by what is playing; the model session is shared, which it is built for. Cancel sets
an Event; the engine then aborts every sink, so a cancelled or failed export leaves no file.
The export is :func:`polypvision.pipeline.export.export`, the one ``polypvision annotate`` and
``batch`` call: the same video (pixel aspect, encoder settings), log and sidecar; with the report,
the per-procedure HTML report of :mod:`polypvision.report` is written beside them.
Plain Python: the callbacks are called on the worker (the window bridges them to Qt).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from polypvision.pipeline.annotate import AnnotateReport
from polypvision.pipeline.engine import Progress, Worker
from polypvision.pipeline.processor import FrameProcessor
from polypvision.recording import check_output_path, sidecar_path
from polypvision.settings import ExportSettings
from polypvision.sources import input_paths, make_source

PROGRESS_EVERY_S = 0.1
BATCH = 4


@dataclass(frozen=True)
class ExportPlan:
    """Where one export writes: the video, and the log (with its sidecar) and report when asked."""

    video: Path
    log: Path | None = None
    report: Path | None = None

    @property
    def outputs(self) -> list[Path]:
        extra = [self.log, sidecar_path(self.log)] if self.log is not None else []
        return [self.video, *extra, *([self.report] if self.report is not None else [])]


def plan_export(spec: str, out: Path, *, log: bool = False, report: bool = False) -> ExportPlan:
    """Check the outputs for ``spec`` exported to ``out`` (an ``.mp4``; the log, its sidecar and
    the report are named after it). Raises OutputError with a one-line message for a bad path,
    an output that is, or lies inside, the input, or one that is not a regular file."""
    out = Path(out).expanduser()
    if out.suffix.lower() != ".mp4":
        out = out.with_suffix(".mp4")
    inputs = input_paths(spec)
    check_output_path(out, inputs)
    log_path = report_path = None
    if log or report:  # the report is made from the log
        log_path = out.with_suffix(".jsonl")
        check_output_path(log_path, (*inputs, out), what="log")
        check_output_path(sidecar_path(log_path), (*inputs, out, log_path), what="log sidecar")
    if report and log_path is not None:
        report_path = out.with_name(out.stem + ".report.html")
        check_output_path(report_path, (*inputs, out, log_path), what="report")
    return ExportPlan(out, log_path, report_path)


class ExportJob:
    """Runs one export on a named worker thread (``pv-export``)."""

    def __init__(
        self,
        spec: str,
        processor: FrameProcessor,
        plan: ExportPlan,
        fps: float = 25.0,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self.spec, self.plan, self.fps = spec, plan, fps
        self.processor = processor.clone()  # same model and settings, its own buffers and smoothing
        self.on_progress = on_progress
        self.cancel = threading.Event()
        self.report: AnnotateReport | None = None
        self.report_page: Path | None = None
        self.worker = Worker("pv-export", self._run, on_exit=on_exit)
        self._last = 0.0

    @property
    def error(self) -> BaseException | None:
        return self.worker.error

    @property
    def thread(self) -> threading.Thread:
        return self.worker.thread

    @property
    def running(self) -> bool:
        return self.worker.alive

    def start(self) -> ExportJob:
        self.worker.start()
        return self

    def wait(self, timeout_s: float) -> None:
        """Cancel and give the worker ``timeout_s`` to wind down (the app is closing)."""
        self.cancel.set()
        self.worker.join(timeout_s)

    def _progress(self, p: Progress) -> None:
        now = time.perf_counter()
        if self.on_progress is not None and (
            now - self._last >= PROGRESS_EVERY_S or (p.total and p.done >= p.total)
        ):
            self._last = now
            self.on_progress(p)

    def _run(self) -> None:
        from polypvision.pipeline.export import ExportTargets, export

        p = self.processor
        source = make_source(self.spec, fps=self.fps)
        try:
            source.open()  # export() closes it
        except BaseException:
            source.close()
            raise
        self.report = export(
            source,
            self.spec,
            p.segmenter,
            p.settings,  # the playing stream's, its blackout included
            ExportSettings(batch=BATCH, fps=self.fps),
            ExportTargets(self.plan.video, self.plan.log, protect=tuple(input_paths(self.spec))),
            cancel=self.cancel,
            progress=self._progress,
        )
        if self.plan.report is not None and self.plan.log is not None:
            from polypvision.report import report_from_log

            self.report_page = report_from_log(self.plan.log, self.plan.report, self.plan.video)
