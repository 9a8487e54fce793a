"""The local engine: a pool of worker processes on this machine, each with a share of the cores.

Not :mod:`concurrent.futures`: there, one worker killed (by the OOM killer, say) breaks the whole
pool and fails every procedure still queued. Here each worker has its own pipe; the parent
watches the pipes and the processes' sentinels, so a death costs only the procedure that worker
held, which goes back in the queue a bounded number of times, and a fresh worker takes the dead
one's place. Workers are started with ``spawn`` (no inherited threads or sessions) and keep one
model session across their procedures. SIGTERM in a worker means "stop": annotate removes its
temporary files and the worker exits; the parent sends it on Ctrl-C.

A worker cannot always clean up: the interrupt can land between a temporary file's creation
and the cleanup that covers it, and a worker killed outright (after STOP_TIMEOUT_S, or by the
OOM killer) removes nothing. So once a worker is dead, the parent removes the hidden temporary
files of the procedure it held (its names only; no one else writes them).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from polypvision.batch.discover import Procedure
from polypvision.batch.engine import DEFAULT_RETRIES, Listener, describe_exit, lost_result
from polypvision.batch.job import JobFn, apply_thread_budget, run_job
from polypvision.batch.outputs import OutputPaths, remove_partials
from polypvision.batch.settings import JobContext
from polypvision.errors import UserError

PROGRESS_EVERY_S = 0.5
STOP_TIMEOUT_S = 10.0
MAX_STARTUP_FAILURES = 3  # workers that died before saying anything, with an error: a broken start


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


class _Sender:
    """The job's progress callback in a worker: a message to the parent,
    at most every PROGRESS_EVERY_S."""

    def __init__(self, conn: Connection, pid: int) -> None:
        self.conn, self.pid, self._last = conn, pid, 0.0

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S:
            self._last = now
            self.conn.send(("progress", self.pid, done, total))


def _worker_main(conn: Connection, job: JobFn, ctx: JobContext, threads: int | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it sends SIGTERM
    signal.signal(signal.SIGTERM, _raise_interrupt)
    apply_thread_budget(threads)
    try:
        while True:
            try:
                proc = conn.recv()
            except EOFError:
                return
            if proc is None:
                return
            conn.send(("result", job(proc, ctx, _Sender(conn, proc.id))))
    except KeyboardInterrupt:
        return


@dataclass
class _Slot:
    process: mp.process.BaseProcess
    conn: Connection
    task: Procedure | None = None
    attempt: int = 0
    heard: bool = False  # it has sent something: it started up


def _remove_partials_of(proc: Procedure, ctx: JobContext) -> None:
    """The hidden temporary files of ``proc``'s outputs, once the worker that held it is dead."""
    with contextlib.suppress(OSError):
        remove_partials(OutputPaths(ctx.output_dir / proc.out_rel))


class LocalEngine:
    name = "local"

    def __init__(
        self,
        workers: int,
        threads: int | None,
        retries: int = DEFAULT_RETRIES,
        job: JobFn = run_job,
        poll_s: float = 0.5,
        start_method: str = "spawn",
    ) -> None:
        self.workers = max(1, workers)
        self.threads = threads
        self.retries = max(0, retries)
        self.job = job
        self.poll_s = poll_s
        self._mp: Any = mp.get_context(start_method)  # typeshed's BaseContext lacks Process
        self._started = 0
        self._startup_failures = 0

    def _spawn(self, ctx: JobContext) -> _Slot:
        parent, child = self._mp.Pipe()
        self._started += 1
        p = self._mp.Process(
            target=_worker_main,
            args=(child, self.job, ctx, self.threads),
            name=f"pv-batch-{self._started}",
            daemon=True,
        )
        p.start()
        child.close()
        return _Slot(p, parent)

    def run(self, procedures: Sequence[Procedure], ctx: JobContext, listener: Listener) -> None:
        pending = deque(procedures)
        attempts = {p.id: 0 for p in procedures}
        slots = [self._spawn(ctx) for _ in range(min(self.workers, len(pending)))]
        try:
            while pending or any(s.task for s in slots):
                for s in slots:
                    if s.task is None and pending:
                        s.task = pending.popleft()
                        attempts[s.task.id] += 1
                        s.attempt = attempts[s.task.id]
                        listener.started(s.task, s.attempt)
                        s.conn.send(s.task)
                wait(
                    [s.conn for s in slots] + [s.process.sentinel for s in slots],
                    timeout=self.poll_s,
                )
                for s in list(slots):
                    if self._drain(s, listener):
                        continue
                    slots.remove(s)
                    self._bury(s, pending, attempts, listener, ctx)
                    if pending and len(slots) < self.workers:
                        slots.append(self._spawn(ctx))
                listener.tick()
        except BaseException:
            for s in slots:
                with contextlib.suppress(OSError, ValueError):
                    s.process.terminate()  # SIGTERM: annotate aborts, temporary files go
            raise
        finally:
            self._stop(slots)
            for s in slots:  # every worker has ended: what the stopped procedures left goes
                if s.task is not None:
                    _remove_partials_of(s.task, ctx)

    def _drain(self, s: _Slot, listener: Listener) -> bool:
        """Handle what a worker sent; False when it is dead."""
        try:
            while s.conn.poll():
                msg = s.conn.recv()
                s.heard = True
                if msg[0] == "progress":
                    listener.progress(msg[1], msg[2], msg[3])
                elif msg[0] == "result":
                    result = msg[1]
                    result.attempts = s.attempt
                    s.task = None
                    listener.finished(result)
        except (EOFError, OSError):
            return False
        return s.process.is_alive()

    def _bury(
        self,
        s: _Slot,
        pending: deque,
        attempts: dict[int, int],
        listener: Listener,
        ctx: JobContext,
    ) -> None:
        s.process.join(1.0)
        if s.task is not None and not s.process.is_alive():
            _remove_partials_of(s.task, ctx)  # a killed worker removed nothing
        reason = describe_exit(s.process.exitcode)
        if not s.heard and (s.process.exitcode or 0) > 0:
            self._startup_failures += 1
            if self._startup_failures >= MAX_STARTUP_FAILURES:
                raise UserError(
                    f"the worker processes exit as they start ({reason}); a script that calls "
                    "polypvision's batch must guard its entry point with "
                    "'if __name__ == \"__main__\":' (workers are spawned and import it)"
                )
        with contextlib.suppress(OSError):
            s.conn.close()
        if s.task is None:
            return
        proc = s.task
        if attempts[proc.id] <= self.retries:
            listener.retried(proc, reason)
            pending.appendleft(proc)
        else:
            listener.finished(lost_result(proc, attempts[proc.id], reason))

    def _stop(self, slots: list[_Slot]) -> None:
        for s in slots:
            with contextlib.suppress(OSError, ValueError, BrokenPipeError):
                s.conn.send(None)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for s in slots:
            s.process.join(max(0.0, deadline - time.monotonic()))
            if s.process.is_alive():
                s.process.kill()
                s.process.join(1.0)
            with contextlib.suppress(OSError):
                s.conn.close()
