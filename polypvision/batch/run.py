"""The driver of one batch run: procedures in, engine running, one progress line, the run's files.

``summary.csv`` and ``index.html`` are rewritten (whole, by rename) each time a procedure
finishes, so a run that is stopped or crashes still leaves an up-to-date account of what was
done; when it ends, every procedure has a row, those never reached marked ``not run``.
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
from polypvision.batch.progress import ProgressDisplay, RunProgress
from polypvision.batch.result import COLUMNS, FAILED, NOT_RUN, ProcedureResult
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
    """The run's results by procedure, and the two files that show them."""

    def __init__(self, output_dir: Path, procedures: Sequence[Procedure], title: str) -> None:
        self.output_dir = output_dir
        self.procedures = list(procedures)
        self.title = title
        self.results: dict[int, ProcedureResult] = {}

    def add(self, result: ProcedureResult) -> None:
        self.results[result.id] = result
        self.write()

    def rows(self, final: bool = False, note: str = "") -> list[ProcedureResult]:
        out = []
        for p in self.procedures:
            r = self.results.get(p.id)
            if r is None and final:
                r = ProcedureResult(
                    p.id, p.label, p.out_rel.as_posix(), NOT_RUN, error=note, attempts=0
                )
            if r is not None:
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
