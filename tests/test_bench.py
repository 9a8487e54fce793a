"""The bench runs end to end and its JSON has every field (no timing is asserted)."""

from __future__ import annotations

import json

from polypvision.cli import main


def test_bench_json_has_every_stage(tmp_path, clip_small, toy_model, capsys):
    out = tmp_path / "bench.json"
    md = tmp_path / "bench.md"
    rc = main(
        [
            "bench",
            str(clip_small),
            "--models",
            str(toy_model),
            "--frames",
            "20",
            "--live-seconds",
            "1",
            "--json",
            str(out),
            "--markdown",
            str(md),
        ]
    )
    assert rc == 0
    doc = json.loads(out.read_text())
    assert {"machine", "input", "command", "frames", "seconds", "rows"} <= set(doc)
    assert {"cpu", "cores", "onnxruntime", "date"} <= set(doc["machine"])
    stages = [r["stage"] for r in doc["rows"]]
    for stage in (
        "decode",
        "encode",
        "preprocess",
        "model",
        "post+smooth+overlay",
        "annotate pipeline",
        "live",
        "live pass-through",
    ):
        assert stage in stages, stage
    for r in doc["rows"]:
        assert {"stage", "detail", "fps", "ms_per_frame", "extra"} <= set(r)
        assert r["fps"] > 0
    pipe = next(r for r in doc["rows"] if r["stage"] == "annotate pipeline")
    assert {"efficiency", "slowest_stage_fps", "frames"} <= set(pipe["extra"])
    live = [r for r in doc["rows"] if r["stage"] == "live"]
    assert [r["extra"]["paced_fps"] for r in live] == [25.0, 30.0]
    for r in live:
        assert {"latency_p50_ms", "latency_p95_ms", "latency_max_ms", "dropped", "frames"} <= set(
            r["extra"]
        )
    passing = [r for r in doc["rows"] if r["stage"] == "live pass-through"]
    assert [r["extra"]["source"] for r in passing] == ["1920x1080@60", "640x480@30"]
    for r in passing:  # measured figures, never judged here: the bench reports, tests do not time
        assert {
            "video_fps",
            "overlay_fps",
            "overlay_age_p50_ms",
            "overlay_age_p95_ms",
            "video_delay_p95_ms",
            "video_dropped",
            "model_skipped",
        } <= set(r["extra"])
    assert {1, 4} == {r["extra"]["batch"] for r in doc["rows"] if r["stage"] == "model"}
    assert "| stage |" in md.read_text() and "| stage |" in capsys.readouterr().out


def test_bench_without_models_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POLYPVISION_MODELS", str(tmp_path))
    assert main(["bench", "--frames", "20"]) == 2
    assert "pass --models" in capsys.readouterr().err


def test_bench_live_only_has_only_the_live_rows(tmp_path, clip_small, toy_model):
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                str(clip_small),
                "--models",
                str(toy_model),
                "--frames",
                "20",
                "--live-seconds",
                "0.5",
                "--live-only",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert {r["stage"] for r in json.loads(out.read_text())["rows"]} == {
        "live",
        "live pass-through",
    }
