"""The Ray engine: one Ray task per procedure, on a local Ray or an existing cluster.

Ray (an optional extra, ``polypvision[ray]``) schedules the tasks, retries a task whose worker
died (killed, out of memory, node lost) up to ``retries`` times, and moves the model: the
driver puts the model file's bytes in the object store once and every task receives them, so
workers need no shared copy of the models (each node keeps one local file per model digest).
Sources and OUTPUT_DIR are paths every worker must see: on a real cluster, shared storage.

CPU tasks ask Ray for ``threads`` CPUs and run onnxruntime with that many threads on the CPU
provider; with ``gpus_per_task`` they ask for a GPU and use CUDA when it really runs there
(the summary's provider column says what ran). Progress comes back through a small actor that
tasks report to; a procedure's result comes back as the task's return value.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from polypvision import __version__
from polypvision.batch.discover import Procedure
from polypvision.batch.engine import DEFAULT_RETRIES, Listener, lost_result
from polypvision.batch.job import JobFn, apply_thread_budget, run_job, worker_identity
from polypvision.batch.result import ProcedureResult
from polypvision.batch.settings import JobContext
from polypvision.errors import UserError
from polypvision.fileio import write_bytes

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0
RAY_HINT = "pip install 'polypvision[ray]' (on the driver and on every node of the cluster)"


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError(f"--engine ray needs Ray, which is not installed; {RAY_HINT}") from None
    return ray


def model_cache_dir() -> Path:
    return Path(
        os.environ.get("POLYPVISION_MODEL_CACHE")
        or Path(tempfile.gettempdir()) / "polypvision-models"
    )


def materialize_model(data: bytes, sha256: str) -> Path:
    """The model's bytes as a local file named by digest (written once per node,
    temp then rename)."""
    folder = model_cache_dir()
    path = folder / f"{sha256}.onnx"
    if path.is_file() and path.stat().st_size == len(data):
        return path
    if hashlib.sha256(data).hexdigest() != sha256:
        raise UserError("the model received through Ray does not match its digest; run again")
    folder.mkdir(parents=True, exist_ok=True)
    return write_bytes(path, data)


class _Board:
    """Collects tasks' starts and progress for the driver (a Ray actor, zero CPUs)."""

    def __init__(self) -> None:
        self.starts: list[tuple[int, int]] = []
        self.progress: dict[int, tuple[int, int | None]] = {}
        self.attempts: dict[int, int] = {}

    def start(self, pid: int) -> None:
        self.attempts[pid] = self.attempts.get(pid, 0) + 1
        self.starts.append((pid, self.attempts[pid]))

    def update(self, pid: int, done: int, total: int | None) -> None:
        self.progress[pid] = (done, total)

    def take(self) -> dict[str, Any]:
        out = {"starts": self.starts, "progress": self.progress, "attempts": dict(self.attempts)}
        self.starts, self.progress = [], {}
        return out


class _Reporter:
    def __init__(self, board: Any, pid: int) -> None:
        self.board, self.pid, self._last = board, pid, 0.0

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S:
            self._last = now
            self.board.update.remote(self.pid, done, total)


def _ray_task(
    proc: Procedure, ctx: JobContext, model: bytes, job: JobFn, board: Any
) -> ProcedureResult:
    """Runs on a Ray worker: the model from the object store, the thread budget, the job."""
    import ray

    ray.get(
        board.start.remote(proc.id)
    )  # waited for: a worker killed right after still counts the attempt
    apply_thread_budget(ctx.settings.threads)
    ctx = replace(ctx, model_path=materialize_model(model, ctx.model_sha256))
    return job(proc, ctx, _Reporter(board, proc.id))


class RayEngine:
    name = "ray"

    def __init__(
        self,
        address: str | None,
        threads: int | None,
        gpus_per_task: float = 0.0,
        retries: int = DEFAULT_RETRIES,
        local_cpus: int | None = None,
        runtime_env: dict[str, Any] | None = None,
        job: JobFn = run_job,
        poll_s: float = 0.5,
    ) -> None:
        self.address = address
        self.threads = threads or 1
        self.gpus = max(0.0, gpus_per_task)
        self.retries = max(0, retries)
        self.local_cpus = local_cpus
        self.runtime_env = runtime_env
        self.job = job
        self.poll_s = poll_s

    def _init(self, ray) -> None:
        kwargs: dict[str, Any] = {
            "log_to_driver": False,
            "logging_level": logging.WARNING,
            "include_dashboard": False,
        }
        if self.runtime_env:
            kwargs["runtime_env"] = self.runtime_env
        if self.address:
            kwargs["address"] = self.address
            if self.address.startswith("ray://"):
                kwargs.pop("include_dashboard")
        elif self.local_cpus:
            kwargs["num_cpus"] = self.local_cpus
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local Ray"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"cannot start or join {where}: {first}") from None

    def _check_workers(self, ray) -> None:
        """A worker that cannot import polypvision, or runs another version, is found now, once."""
        try:
            ident = ray.get(ray.remote(num_cpus=0)(worker_identity).remote(), timeout=300)
        except Exception as exc:
            first = (
                str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
            )
            raise UserError(
                f"the Ray workers cannot run polypvision ({first}); {RAY_HINT}"
            ) from None
        if ident.get("polypvision") != __version__:
            log.warning(
                "Ray workers run polypvision %s, this driver %s",
                ident.get("polypvision"),
                __version__,
            )

    def _worker_context(self, ctx: JobContext) -> JobContext:
        provider = ctx.settings.provider if self.gpus > 0 else "cpu"
        return replace(ctx, settings=replace(ctx.settings, threads=self.threads, provider=provider))

    def run(self, procedures: Sequence[Procedure], ctx: JobContext, listener: Listener) -> None:
        ray = import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            self._init(ray)
        refs: dict[Any, Procedure] = {}
        try:
            self._check_workers(ray)
            board = ray.remote(num_cpus=0)(_Board).remote()
            model_ref = ray.put(Path(ctx.model_path).read_bytes())
            task = ray.remote(_ray_task).options(
                num_cpus=self.threads,
                num_gpus=self.gpus,
                max_retries=self.retries,
                retry_exceptions=False,
            )
            wctx = self._worker_context(ctx)
            refs = {task.remote(p, wctx, model_ref, self.job, board): p for p in procedures}
            self._collect(ray, refs, board, listener)
        except BaseException:
            for ref in refs:
                with contextlib.suppress(Exception):
                    ray.cancel(ref)  # KeyboardInterrupt in the task: annotate cleans up
            raise
        finally:
            if started_here:
                with contextlib.suppress(Exception):
                    ray.shutdown()

    def _collect(self, ray, refs: dict[Any, Procedure], board: Any, listener: Listener) -> None:
        finished: set[int] = set()
        attempts: dict[int, int] = {}
        by_id = {p.id: p for p in refs.values()}
        while refs:
            done, _ = ray.wait(
                list(refs), num_returns=len(refs), timeout=self.poll_s, fetch_local=False
            )
            news = ray.get(board.take.remote())
            attempts.update(news["attempts"])
            for pid, attempt in news["starts"]:
                proc = by_id.get(pid)
                if proc is None or pid in finished:
                    continue
                if attempt > 1:
                    listener.retried(proc, "the worker died")
                listener.started(proc, attempt)
            for pid, (d, t) in news["progress"].items():
                if pid not in finished:
                    listener.progress(pid, d, t)
            for ref in done:
                proc = refs.pop(ref)
                finished.add(proc.id)
                listener.finished(self._result(ray, ref, proc, attempts.get(proc.id, 1)))
            listener.tick()

    def _result(self, ray, ref: Any, proc: Procedure, attempts: int) -> ProcedureResult:
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            reason = f"the worker died ({type(exc).__name__}{': ' + first[:160] if first else ''})"
            return lost_result(proc, attempts, reason)
        result.attempts = attempts
        return result
