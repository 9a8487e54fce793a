"""The driver of one batch run: procedures in, engine running, one progress line, the run's files.

``summary.csv`` and ``index.html`` are written (whole, by rename) when the run starts and each
time a procedure finishes, with a row for every procedure (``not run`` until it finishes), so a
run that is stopped, crashes or is killed outright still leaves an up-to-date account.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from polypvision.batch.discover import Procedure
from polypvision.batch.engine import Engine
from polypvision.batch.outputs import remove_leftovers
from polypvision.batch.progress import ProgressDisplay, RunProgress
from polypvision.batch.result import (
    COLUMNS,
    DONE_EARLIER,
    FAILED,
    NOT_RUN,
    OK,
    PARTIAL,
    ProcedureResult,
)
from polypvision.batch.settings import JobContext
from polypvision.fileio import write_text
from polypvision.report import render_index

log = logging.getLogger(__name__)

SUMMARY = "summary.csv"
INDEX = "index.html"


def machine_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_sizing(
    cores: int, threads: int | None = None, workers: int | None = None
) -> tuple[int, int]:
    """Workers and threads per worker that fill the machine without oversubscribing it.

    One thread per worker: annotate already overlaps decode, model and encode in threads of
    its own, so more processes use the cores better than more model threads per process.
    """
    threads = max(1, threads or 1)
    workers = workers or max(1, cores // threads)
    return max(1, workers), threads


class Book:
    """The run's results by procedure, and the two files that show them.

    Every procedure has a row from the start: one not finished yet is ``not run``, so a driver
    killed outright (SIGKILL, a lost node) still leaves a summary that names what never ran.
    A procedure done earlier keeps the processing time the earlier summary gave it.
    """

    def __init__(self, output_dir: Path, procedures: Sequence[Procedure], title: str) -> None:
        self.output_dir = output_dir
        self.procedures = list(procedures)
        self.title = title
        self.results: dict[int, ProcedureResult] = {}
        self.earlier = _earlier_times(output_dir / SUMMARY)

    def add(self, result: ProcedureResult) -> None:
        if result.status in (DONE_EARLIER, PARTIAL) and not result.analysed_now:
            before = self.earlier.get(result.path)
            if before is not None:
                result.processing_s = before
        self.results[result.id] = result
        self.write()

    def rows(self, final: bool = False, note: str = "") -> list[ProcedureResult]:
        """A row per procedure; those without a result are ``not run`` (with ``note`` when the
        run is over, empty while it goes)."""
        out = []
        for p in self.procedures:
            r = self.results.get(p.id)
            if r is None:
                r = ProcedureResult(
                    p.id,
                    p.label,
                    p.out_rel.as_posix(),
                    NOT_RUN,
                    error=note if final else "",
                    attempts=0,
                )
            out.append(r)
        return out

    def write(self, final: bool = False, note: str = "") -> None:
        rows = [r.row() for r in self.rows(final, note)]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        write_text(self.output_dir / SUMMARY, buf.getvalue())
        write_text(self.output_dir / INDEX, render_index(rows, title=self.title))
        if final:
            # An interrupt that landed in an earlier write, between its temporary file's
            # creation and the cleanup that goes with it, left that file behind.
            remove_leftovers(self.output_dir, (SUMMARY, INDEX))


def _earlier_times(summary: Path) -> dict[str, float]:
    """Processing time per procedure from an earlier run's summary (empty when there is none)."""
    try:
        with open(summary, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, ValueError, csv.Error):
        return {}
    out: dict[str, float] = {}
    for r in rows:
        if r.get("status") in (OK, DONE_EARLIER, PARTIAL):
            try:
                out[r["path"]] = float(r["processing_s"])
            except (KeyError, TypeError, ValueError):
                continue
    return out


class _Listener:
    def __init__(
        self, state: RunProgress, display: ProgressDisplay, book: Book, verbose: bool
    ) -> None:
        self.state, self.display, self.book, self.verbose = state, display, book, verbose

    def started(self, proc: Procedure, attempt: int) -> None:
        self.state.started(proc.id)
        self.display.show()

    def progress(self, pid: int, done: int, total: int | None) -> None:
        if pid in self.state.running:
            self.state.progress(pid, done, total)

    def retried(self, proc: Procedure, reason: str) -> None:
        self.state.retried(proc.id)
        self.display.note(f"polypvision: {proc.label}: {reason}; trying again")

    def finished(self, result: ProcedureResult) -> None:
        self.state.finished(result)
        self.book.add(result)
        if result.status == FAILED:
            self.display.note(f"polypvision: failed: {result.path}: {result.error}")
            if self.verbose and result.detail:
                self.display.note(result.detail.rstrip())
        self.display.show()

    def tick(self) -> None:
        self.display.show()


def run_batch(
    procedures: Sequence[Procedure],
    ctx: JobContext,
    engine: Engine,
    *,
    show_progress: bool = True,
    verbose: bool = False,
    clock: Callable[[], float] = time.monotonic,
    title: str = "PolypVision batch",
) -> list[ProcedureResult]:
    """Run every procedure through the engine; the results in procedure order."""
    state = RunProgress(len(procedures), clock)
    display = ProgressDisplay(state, enabled=show_progress)
    book = Book(ctx.output_dir, procedures, title)
    try:
        # Every procedure ``not run`` until it finishes: a killed driver leaves that. Inside the
        # try: a SIGTERM during this first write (summary.csv published, index.html not yet, or
        # neither) still ends with the final account below.
        book.write()
        engine.run(procedures, ctx, _Listener(state, display, book, verbose))
    except BaseException as exc:
        display.close()
        book.write(
            final=True,
            note="interrupted" if isinstance(exc, KeyboardInterrupt) else "the run stopped",
        )
        raise
    display.close()
    book.write(final=True, note="the engine never returned a result")
    return book.rows(final=True)
