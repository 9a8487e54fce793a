"""An interrupt that lands between a temporary file's creation and the cleanup that covers it,
made deterministic: no hidden temporary file may outlive the batch (or the writer) it came from.

The flaky end-to-end SIGTERM test in test_batch.py hits these windows by chance on a loaded
machine; here each window is hit on purpose.
"""

from __future__ import annotations

import csv
import os
import signal
import time
from pathlib import Path, PurePosixPath

import pytest

from polypvision.batch.discover import Procedure
from polypvision.batch.local import LocalEngine
from polypvision.batch.outputs import OutputPaths
from polypvision.batch.result import ProcedureResult
from polypvision.batch.run import SUMMARY, run_batch
from polypvision.batch.settings import AnnotateSettings, JobContext
from polypvision.events import EventSettings
from polypvision.partials import Partial

MODE_ENV = "PV_TEST_LEAK_MODE"


def partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if "partial" in p.name]


def leaking_job(proc, ctx, progress=None):
    """A job whose temporary file is never covered by a cleanup: the interrupt (or a hard kill)
    arrives right after it is created. Runs in a spawned worker (importable from here)."""
    paths = OutputPaths(ctx.output_dir / proc.out_rel)
    paths.stem.parent.mkdir(parents=True, exist_ok=True)
    Partial(paths.video, ".mp4")  # never discarded, still locked by this process
    mode = os.environ.get(MODE_ENV, "interrupt")
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "wait":  # until the parent's SIGTERM: its KeyboardInterrupt leaves the file
        if progress is not None:
            progress(0, None)
        time.sleep(60)
    raise KeyboardInterrupt  # what a worker's SIGTERM handler raises


def _ctx(out: Path) -> JobContext:
    settings = AnnotateSettings()
    return JobContext(out, out / "model.onnx", "0" * 64, settings, EventSettings())


def _procs(tmp_path: Path, n: int = 1) -> list[Procedure]:
    return [
        Procedure(i, str(tmp_path / f"v{i}.mp4"), PurePosixPath(f"v{i}"), f"v{i}.mp4")
        for i in range(n)
    ]


class _Recorder:
    def __init__(self, interrupt_on_progress: bool = False) -> None:
        self.results: list[ProcedureResult] = []
        self.interrupt_on_progress = interrupt_on_progress

    def started(self, proc, attempt):
        pass

    def progress(self, pid, done, total):
        if self.interrupt_on_progress:
            raise KeyboardInterrupt  # what the driver's SIGTERM handler raises

    def retried(self, proc, reason):
        pass

    def finished(self, result):
        self.results.append(result)

    def tick(self):
        pass


@pytest.mark.parametrize("mode", ["interrupt", "kill"])
def test_a_dead_workers_temporary_files_are_removed_by_the_parent(tmp_path, monkeypatch, mode):
    monkeypatch.setenv(MODE_ENV, mode)
    out = tmp_path / "out"
    out.mkdir()
    listener = _Recorder()
    LocalEngine(1, 1, retries=0, job=leaking_job, poll_s=0.05).run(
        _procs(tmp_path), _ctx(out), listener
    )
    assert [r.status for r in listener.results] == ["failed"]
    assert not partials(out)


def test_sigterm_in_the_window_leaves_nothing_after_the_driver_is_interrupted(
    tmp_path, monkeypatch
):
    monkeypatch.setenv(MODE_ENV, "wait")
    out = tmp_path / "out"
    out.mkdir()
    engine = LocalEngine(1, 1, retries=0, job=leaking_job, poll_s=0.05)
    with pytest.raises(KeyboardInterrupt):
        engine.run(_procs(tmp_path), _ctx(out), _Recorder(interrupt_on_progress=True))
    assert not partials(out)


def test_an_interrupt_during_the_first_account_still_leaves_the_final_one(tmp_path, monkeypatch):
    import polypvision.batch.run as run_mod

    calls = []
    real = run_mod.render_index

    def render_once_interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # summary.csv is written, index.html not yet
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(run_mod, "render_index", render_once_interrupted)

    class NeverRuns:
        name = "none"

        def run(self, procedures, ctx, listener):
            raise AssertionError("the interrupt came first")

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        run_batch(_procs(tmp_path, 2), _ctx(out), NeverRuns(), show_progress=False)
    with open(out / SUMMARY, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["status"], r["error"]) for r in rows] == [("not run", "interrupted")] * 2
    assert (out / "index.html").is_file()
    assert not partials(out)


@pytest.mark.parametrize("folder", [False, True])
def test_a_partial_interrupted_while_it_is_made_removes_itself(tmp_path, monkeypatch, folder):
    import polypvision.partials as partials_mod

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(partials_mod, "_lock", interrupted)
    with pytest.raises(KeyboardInterrupt):
        if folder:
            Partial(tmp_path / "masks", folder=True)
        else:
            Partial(tmp_path / "v.mp4", ".mp4")
    assert list(tmp_path.iterdir()) == []


def test_a_log_interrupted_while_it_opens_removes_its_temporary_file(tmp_path, monkeypatch):
    import polypvision.recording as recording

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(recording, "open", interrupted, raising=False)
    with pytest.raises(KeyboardInterrupt):
        recording.DetectionLog(tmp_path / "v.jsonl", {})
    assert list(tmp_path.iterdir()) == []
