"""Keeps benchmarks/soak.py from rotting: its main() on 300 frames must pass its own checks."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


@pytest.mark.repo  # runs benchmarks/soak.py of the checkout
def test_soak_script_runs_short(tmp_path, toy_model, capsys):
    spec = importlib.util.spec_from_file_location("pv_soak", SOAK)
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    out = tmp_path / "soak.json"
    rc = soak.main(
        [
            "--frames",
            "300",
            "--size",
            "160x120",
            "--model",
            str(toy_model),
            "--quiet",
            "--record",
            str(tmp_path / "rec.mp4"),
            "--json",
            str(out),
            "--timeout",
            "60",
        ]
    )
    res = json.loads(out.read_text())
    assert rc == 0, res["problems"]
    assert res["frames"] >= 300 and res["error"] is None
    assert res["depth_peak"]["slot"] <= 1 and res["depth_peak"]["recorder_queue"] <= 64
    assert res["threads"]["after_stop"] <= res["threads"]["before"]
    assert {"launch", "start", "end", "growth"} <= set(res["rss_mb"])
    assert (tmp_path / "rec.mp4").stat().st_size > 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
