"""What an engine is: it runs the job once per procedure and tells a listener what happened.

Engines differ only in where the job runs (worker processes here, Ray tasks on a cluster) and
in how a worker's death is noticed; the job, the outputs, the summary and the progress line
are shared. Whatever an engine sees, every procedure ends in exactly one ``finished`` call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from polypvision.batch.discover import Procedure
from polypvision.batch.result import FAILED, ProcedureResult
from polypvision.batch.settings import JobContext

DEFAULT_RETRIES = 2  # further attempts after a worker died under a procedure


class Listener(Protocol):
    def started(self, proc: Procedure, attempt: int) -> None: ...
    def progress(self, pid: int, done: int, total: int | None) -> None: ...
    def retried(self, proc: Procedure, reason: str) -> None: ...
    def finished(self, result: ProcedureResult) -> None: ...
    def tick(self) -> None: ...


class Engine(Protocol):
    name: str

    def run(self, procedures: Sequence[Procedure], ctx: JobContext, listener: Listener) -> None: ...


def lost_result(proc: Procedure, attempts: int, reason: str) -> ProcedureResult:
    """The result of a procedure whose worker died on every attempt."""
    return ProcedureResult(
        proc.id,
        proc.label,
        proc.out_rel.as_posix(),
        FAILED,
        attempts=attempts,
        error=f"{reason} on every attempt ({attempts}); out of memory, or killed?",
    )


def describe_exit(exitcode: int | None) -> str:
    import signal

    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the worker died ({name})"
    return f"the worker died (exit status {exitcode})"
