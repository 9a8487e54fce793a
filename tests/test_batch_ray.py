"""`polypvision batch --engine ray` through a local Ray started inside the test (two CPUs).

Skipped where Ray is not installed (it is the optional ``ray`` extra).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from batch_helpers import (
    KILL_DIR_ENV,
    decode_frames,
    killed_always_job,
    killed_once_job,
    log_lines_without_timing,
    make_archive,
)

from polypvision.batch.discover import discover
from polypvision.batch.local import LocalEngine
from polypvision.batch.run import run_batch
from polypvision.batch.settings import AnnotateSettings, JobContext, sha256_file
from polypvision.events import EventSettings
from polypvision.settings import ExportSettings

ray = pytest.importorskip("ray")

RUN_COLUMNS = {"processing_s", "fps", "worker_rss_mb"}  # how the run went, not what it made


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """A local Ray with two CPUs; its workers can import the test helpers and write kill marks."""
    marks = tmp_path_factory.mktemp("marks")
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", KILL_DIR_ENV)}
    here = str(Path(__file__).parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, saved["PYTHONPATH"]) if p)
    os.environ[KILL_DIR_ENV] = str(marks)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=80 * 1024 * 1024,
        logging_level="warning",
    )
    try:
        yield marks
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return make_archive(tmp_path_factory.mktemp("archive"))


def _ctx(out: Path, model: Path) -> JobContext:
    out.mkdir(parents=True, exist_ok=True)
    settings = AnnotateSettings(
        threads=1, export=ExportSettings(fps=10.0), provider="cpu", masks=True
    )
    return JobContext(out, model, sha256_file(model), settings, EventSettings(0.3, 0.5))


def _rows(out: Path) -> list[dict]:
    with open(out / "summary.csv", newline="") as fh:
        return [{k: v for k, v in r.items() if k not in RUN_COLUMNS} for r in csv.DictReader(fh)]


def test_ray_gives_the_local_engine_outputs(local_ray, archive, toy_model, tmp_path):
    from polypvision.batch.ray_engine import RayEngine

    procs = discover(archive)
    run_batch(
        procs,
        _ctx(tmp_path / "local", toy_model),
        LocalEngine(2, 1, poll_s=0.05),
        show_progress=False,
    )
    results = run_batch(
        procs,
        _ctx(tmp_path / "ray", toy_model),
        RayEngine(None, threads=1, poll_s=0.1),
        show_progress=False,
    )
    assert [r.status for r in results] == ["ok", "ok", "failed", "ok"]
    assert _rows(tmp_path / "ray") == _rows(tmp_path / "local")
    for name in ("a/c0", "a/c1", "b/frames"):
        a, b = tmp_path / "local" / name, tmp_path / "ray" / name
        assert log_lines_without_timing(Path(f"{a}.jsonl")) == log_lines_without_timing(
            Path(f"{b}.jsonl")
        )
        fa, fb = decode_frames(Path(f"{a}.mp4")), decode_frames(Path(f"{b}.mp4"))
        assert len(fa) == len(fb) and all(np.array_equal(x, y) for x, y in zip(fa, fb))
        masks_a = sorted(Path(f"{a}_masks").glob("*.png"))
        assert [p.name for p in masks_a] == sorted(p.name for p in Path(f"{b}_masks").glob("*.png"))
        for p in masks_a:
            assert np.array_equal(
                cv2.imread(str(p), cv2.IMREAD_UNCHANGED),
                cv2.imread(str(Path(f"{b}_masks") / p.name), cv2.IMREAD_UNCHANGED),
            )
    # The model reached the workers through the object store, as a local file named by digest.
    assert "polypvision-models" in (tmp_path / "ray" / "a" / "c0.meta.json").read_text()


def test_ray_retries_a_killed_worker(local_ray, archive, toy_model, tmp_path):
    from polypvision.batch.ray_engine import RayEngine

    procs = [p for p in discover(archive) if p.out_rel.parent.name == "a"]
    results = {
        r.path: r
        for r in run_batch(
            procs,
            _ctx(tmp_path / "out", toy_model),
            RayEngine(None, threads=1, retries=2, job=killed_once_job, poll_s=0.1),
            show_progress=False,
        )
    }
    assert results["a/c0.mp4"].status == "ok" and results["a/c0.mp4"].attempts == 2
    assert results["a/c1.mp4"].status == "ok"
    assert len(decode_frames(tmp_path / "out" / "a" / "c0.mp4")) == 16


def test_ray_gives_up_after_the_retries_and_the_rest_succeed(
    local_ray, archive, toy_model, tmp_path
):
    from polypvision.batch.ray_engine import RayEngine

    (local_ray / "c0.attempts").unlink(missing_ok=True)
    procs = [p for p in discover(archive) if p.out_rel.parent.name == "a"]
    results = {
        r.path: r
        for r in run_batch(
            procs,
            _ctx(tmp_path / "out", toy_model),
            RayEngine(None, threads=1, retries=1, job=killed_always_job, poll_s=0.1),
            show_progress=False,
        )
    }
    bad = results["a/c0.mp4"]
    assert bad.status == "failed" and "worker died" in bad.error and "\n" not in bad.error
    assert (local_ray / "c0.attempts").read_text() == "2", "one try plus one retry"
    assert results["a/c1.mp4"].status == "ok"


def test_model_reaches_workers_as_bytes(tmp_path, monkeypatch):
    from polypvision.batch.ray_engine import materialize_model
    from polypvision.errors import UserError

    monkeypatch.setenv("POLYPVISION_MODEL_CACHE", str(tmp_path / "cache"))
    import hashlib

    data = b"model bytes"
    digest = hashlib.sha256(data).hexdigest()
    path = materialize_model(data, digest)
    assert path.read_bytes() == data and path.name == f"{digest}.onnx"
    assert materialize_model(data, digest) == path
    with pytest.raises(UserError):
        materialize_model(b"other bytes", "0" * 64)
