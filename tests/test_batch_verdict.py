"""``batch`` tells the truth about each procedure (issue 23, defect 10).

- A recording cut at 60% is what ``annotate`` calls PARTIAL (exit status 3): a batch must not
  call it ``ok`` in summary.csv and the index. One export, one verdict.
- A re-run calls the procedures an earlier run finished "done earlier" (not "skipped": a reader
  hears "not analysed") and keeps their processing time.
- A driver killed outright (SIGKILL) leaves summary.csv naming the unfinished procedures
  ``not run`` instead of leaving them out.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from polypvision.cli import main
from polypvision.demo import write_synthetic_clip

CLIP_FRAMES = 60


def summary(out: Path) -> dict[str, dict]:
    with open(out / "summary.csv", newline="") as fh:
        return {r["path"]: r for r in csv.DictReader(fh)}


def batch(archive: Path, out: Path, model: Path) -> int:
    return main(
        ["batch", str(archive), "-o", str(out), "--model", str(model)]
        + ["--workers", "1", "--threads", "1", "--fps", "10", "--quiet"]
    )


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """A whole recording and the same kind of recording cut at 60% of its bytes."""
    root = tmp_path_factory.mktemp("verdict")
    whole = write_synthetic_clip(root / "whole.mp4", CLIP_FRAMES, 160, 120, 10.0, seed=1)
    data = write_synthetic_clip(root / "src.mp4", CLIP_FRAMES, 160, 120, 10.0, seed=2).read_bytes()
    (root / "src.mp4").unlink()
    (root / "cut.mp4").write_bytes(data[: int(len(data) * 0.6)])
    assert whole.exists()
    return root


def test_a_truncated_recording_has_annotates_verdict(archive, toy_model, tmp_path, capsys):
    rc = main(
        ["annotate", str(archive / "cut.mp4"), "-o", str(tmp_path / "a.mp4")]
        + ["--model", str(toy_model), "--quiet"]
    )
    said = capsys.readouterr().out
    assert rc == 3 and "PARTIAL" in said, "annotate calls the cut recording partial"
    out = tmp_path / "out"
    assert batch(archive, out, toy_model) == 3, "some partial, none failed: annotate's status"
    rows = summary(out)
    assert rows["whole.mp4"]["status"] == "ok"
    cut = rows["cut.mp4"]
    assert cut["status"] == "partial", "not ok: frames the recording announces are missing"
    assert int(cut["frames_out"]) < int(cut["frames_in"]) == CLIP_FRAMES
    assert cut["error"].startswith("PARTIAL: ") and f"of {CLIP_FRAMES} frames" in cut["error"]
    index = (out / "index.html").read_text()
    assert ">partial<" in index and "PARTIAL: " in index


def test_a_rerun_says_done_earlier_and_keeps_the_processing_time(archive, toy_model, tmp_path):
    out = tmp_path / "out"
    batch(archive, out, toy_model)
    first = summary(out)
    time.sleep(0.05)
    batch(archive, out, toy_model)
    again = summary(out)
    assert again["whole.mp4"]["status"] == "done earlier"
    assert again["cut.mp4"]["status"] == "partial", "the verdict stays: it was checked again"
    for path in ("whole.mp4", "cut.mp4"):
        assert again[path]["processing_s"] == first[path]["processing_s"], path
        assert float(again[path]["processing_s"]) > 0
    assert "skipped" not in (out / "summary.csv").read_text()
    assert ">skipped<" not in (out / "index.html").read_text()


def test_a_killed_driver_leaves_not_run_rows(toy_model, tmp_path):
    """SIGKILL to the whole run (driver and workers) mid-procedure: nothing finishes, and the
    summary already names every procedure ``not run``."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        write_synthetic_clip(src / f"long{i}.mp4", 400, 320, 240, 25.0, seed=i)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "polypvision", "batch", str(src), "-o", str(out)]
        + ["--model", str(toy_model), "--workers", "1", "--threads", "1", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill reaches its workers too
    )
    try:
        deadline = time.monotonic() + 120
        seen = False
        while proc.poll() is None and time.monotonic() < deadline:
            # A procedure's own partial file, not summary.csv's or index.html's: those are written
            # by the same atomic rename (``.summary.csv.XXXXXXXX.partial.csv``), and a kill while
            # the first one is in flight rightly leaves no summary at all yet.
            seen = (out / "summary.csv").exists() and any(
                "partial" in p.name and not p.name.startswith((".summary.", ".index."))
                for p in out.glob(".*")
            )
            if seen:
                break  # the first procedure is being written
            time.sleep(0.05)  # waiting for a condition (a temporary file), not a duration
        assert seen, "the first procedure started writing"
        assert proc.poll() is None, "the run was still going"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    rows = summary(out)
    assert sorted(rows) == ["long0.mp4", "long1.mp4", "long2.mp4"]
    assert {r["status"] for r in rows.values()} == {"not run"}
