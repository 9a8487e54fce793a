"""``polypvision evaluate`` on a toy ONNX model and a tiny synthetic dataset."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from tiny_datasets import make_dataset
from toy_model import build_toy_model

from polypvision import evaluate as ev


def test_counts_mean_and_pooled_differ_as_they_should():
    gt1 = np.zeros((10, 10), bool)
    gt1[:5] = True  # 50 px
    gt2 = np.zeros((10, 10), bool)
    gt2[0, :2] = True  # 2 px
    p1 = gt1.astype(np.float32)  # perfect on the big one
    p2 = np.zeros((10, 10), np.float32)  # misses the small one
    r = ev.score([p1, p2], [gt1, gt2], 0.5)
    assert r["mean"]["dice"] == pytest.approx(0.5)
    assert r["pooled"]["dice"] == pytest.approx(100 / 102)
    assert r["pooled"]["accuracy"] == pytest.approx(198 / 200)
    assert r["per_image"][1]["precision"] == 0.0 and r["per_image"][1]["recall"] == 0.0


def test_empty_prediction_and_empty_truth_is_perfect():
    z = np.zeros((4, 4), bool)
    m = ev.Counts.of(z, z).metrics()
    assert m["dice"] == 1.0 and m["iou"] == 1.0 and m["precision"] == 1.0


def test_evaluate_end_to_end_writes_markdown_and_json(tmp_path):
    from polypvision import data as pdata

    data = make_dataset(tmp_path / "toydb", n_seq=8, per_seq=3)
    model = build_toy_model(tmp_path / "toy.onnx", size=64)
    with pytest.raises(
        pdata.SplitError, match="does not exist"
    ):  # a mistyped split file is not made up
        ev.evaluate_many(
            model, pdata.specs_from(str(data), None), split_file=tmp_path / "split.json"
        )
    assert not (tmp_path / "split.json").exists()
    pdata.load_or_create_split(pdata.discover(data), tmp_path / "split.json")
    args = SimpleNamespace(
        model=str(model),
        data=str(data),
        split="test",
        split_file=str(tmp_path / "split.json"),
        out=str(tmp_path / "r.md"),
        json=str(tmp_path / "r.json"),
        threshold=None,
        provider="cpu",
        threads=1,
        batch=4,
        tta=True,
    )
    assert ev.run(args) == 0
    md = (tmp_path / "r.md").read_text()
    assert (
        "| mean over images (the mask the app draws) |" in md
        and "research code" in md
        and "Threshold sweep" in md
    )
    assert "background" in md
    doc = json.loads((tmp_path / "r.json").read_text())["sets"][0]
    assert doc["leaky"] is False and doc["images"] > 0
    assert doc["mean"]["dice"] > 0.8  # the toy model finds red discs
    assert set(doc["sweep_mean_dice"]) == {f"{t:.1f}" for t in ev.SWEEP}
    assert "tta_flip" in doc


def test_evaluate_flags_leaky_split(tmp_path):
    data = make_dataset(tmp_path / "kv", n_seq=4, per_seq=4, sequences=False)
    model = build_toy_model(tmp_path / "toy.onnx", size=64)
    r = ev.evaluate(model, data, split="test", split_file=tmp_path / "s.json", batch=2)
    assert r["leaky"] is True
    assert "LEAKY SPLIT" in ev.to_markdown(r)


def test_cli_train_registers_without_tensorflow(monkeypatch):
    import argparse
    import sys

    monkeypatch.setitem(sys.modules, "tensorflow", None)  # importing it would fail
    from polypvision import cli_train

    p = argparse.ArgumentParser()
    cli_train.register(p.add_subparsers(dest="cmd"))
    args = p.parse_args(["train", "--data", "x", "--out", "y"])
    assert args.func is cli_train._train
    assert p.parse_args(["evaluate", "--model", "m", "--data", "d"]).split == "test"


def test_train_without_tensorflow_says_which_extra(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "tensorflow", None)
    from polypvision import cli_train

    assert cli_train.main(["train", "--data", "x", "--out", "y"]) == 2
    assert "pip install 'polypvision[train,cpu]'" in capsys.readouterr().err


# ------------------------------------------------------------------ several datasets, the
# literature's table


def _multi(tmp_path, red_speck=False):
    from tiny_datasets import make_negatives

    a = make_dataset(tmp_path / "alpha", n_seq=8, per_seq=3)
    b = make_dataset(tmp_path / "beta", n_seq=6, per_seq=3, seed=1)
    n = make_negatives(tmp_path / "neg", n_seq=4, per_seq=3, red_speck=red_speck)
    specs = pdata_specs([a, b], [n])
    return specs, tmp_path / "split.json"


def pdata_specs(data, negs):
    from polypvision import data as pdata

    return pdata.specs_from([str(d) for d in data], [str(n) for n in negs])


def test_evaluate_many_prints_the_literature_table_and_false_alarms(tmp_path):
    from polypvision import data as pdata

    specs, split = _multi(tmp_path)
    pdata.load_splits(specs, split)  # made once, as train does
    model = build_toy_model(tmp_path / "toy.onnx", size=64)
    res = ev.evaluate_many(model, specs, split="test", split_file=split, batch=4)
    polyp = [r for r in res["sets"] if r["kind"] == "polyp"]
    neg = [r for r in res["sets"] if r["kind"] == "negative"]
    assert [r["dataset"] for r in polyp] == ["alpha", "beta"] and len(neg) == 1
    for r in polyp:
        assert set(r["sod"]) == {"mdice", "miou", "wfm", "sm", "mean_em", "max_em", "mae"}
        assert r["sod"]["mdice"] > 0.7 and r["sod"]["mae"] < 0.1  # the toy model finds red discs
        assert r["found"] == 1.0 and len(r["worst"]) > 0
    assert (
        neg[0]["flagged_raw"] == 0.0 and neg[0]["flagged_app"] == 0.0
    )  # green frames: nothing red
    md = ev.table_markdown(res)
    assert md.count("| toy-redness |") == 2 and "Polyp-free frames" in md and "pysodmetrics" in md
    args = SimpleNamespace(
        model=str(model),
        data=[str(s.path) for s in specs if s.kind == "polyp"],
        negatives=[str(s.path) for s in specs if s.kind == "negative"],
        split="test",
        split_file=str(split),
        out=str(tmp_path / "r.md"),
        json=str(tmp_path / "r.json"),
        threshold=None,
        provider="cpu",
        threads=1,
        batch=4,
        tta=False,
    )
    assert ev.run(args) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [s["dataset"] for s in doc["sets"]] == ["alpha", "beta", "neg"] and "sweep" not in doc[
        "sets"
    ][0]


def test_sod_metrics_of_a_perfect_map_are_perfect():
    gt = np.zeros((40, 50), bool)
    gt[10:25, 12:30] = True
    m = ev.sod_metrics([gt.astype(np.float32)], [gt])
    assert (
        m["mdice"] == pytest.approx(1.0, abs=0.01)
        and m["miou"] == pytest.approx(1.0, abs=0.01)
        and m["mae"] == 0.0
    )
    assert m["sm"] == pytest.approx(1.0, abs=0.01) and m["wfm"] == pytest.approx(1.0, abs=1e-3)


def test_gate_chosen_on_validation_silences_specks_and_keeps_polyps(tmp_path):
    from polypvision import data as pdata
    from polypvision.model.session import Segmenter

    specs, split = _multi(tmp_path, red_speck=True)  # every polyp-free frame carries a red dot
    sds = pdata.load_splits(specs, split)
    seg = Segmenter(build_toy_model(tmp_path / "toy.onnx", size=64), provider="cpu")
    ungated = ev.evaluate_set(seg, sds[2], "val")
    assert ungated["flagged_app"] == 1.0  # without a gate every speck is a "polyp"
    gate = ev.choose_gate(seg, sds, "val")
    assert gate["val_flagged"] <= ev.GATE_MAX_FLAGGED and gate["val_found"] == 1.0
    assert gate["min_area"] > 0 or gate["min_peak"] > 0
    weaker = [
        g
        for g in gate["grid"]
        if g["flagged"] <= ev.GATE_MAX_FLAGGED
        and g["found"] == 1.0
        and (g["min_area"], g["min_peak"]) < (gate["min_area"], gate["min_peak"])
    ]
    assert (
        all(g["min_area"] > gate["min_area"] or g["min_peak"] > gate["min_peak"] for g in weaker)
        or not weaker
    )
    from polypvision.smoothing import SmoothingConfig

    gated = ev.evaluate_set(
        seg,
        sds[2],
        "val",
        smoothing=SmoothingConfig(min_area=gate["min_area"], min_peak=gate["min_peak"]),
    )
    assert gated["flagged_app"] <= ev.GATE_MAX_FLAGGED


def test_evaluate_without_any_folder_says_so(tmp_path):
    from polypvision.errors import UserError

    args = SimpleNamespace(
        model="m.onnx",
        data=None,
        negatives=None,
        split="test",
        split_file=None,
        out=None,
        json=None,
        threshold=None,
        provider="cpu",
        threads=1,
        batch=4,
        tta=False,
    )
    with pytest.raises(UserError, match="--data"):
        ev.run(args)


def test_evaluate_false_alarms_are_what_annotate_logs(tmp_path):
    """The figure evaluate reports for polyp-free frames is annotate's own per-frame `polyp`, frame
    for frame (one sequence played as a clip with the default smoothing and the model's gate)."""
    import cv2

    from polypvision import data as pdata
    from polypvision.cli import main
    from polypvision.model.session import Segmenter

    root = tmp_path / "neg"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(3)
    for k in range(12):  # one sequence; a red blob on some frames, growing and fading
        img = np.zeros((120, 160, 3), np.uint8)
        img[:] = (30, 160, 40)
        if k % 3:
            cv2.circle(
                img, (int(rng.integers(30, 130)), 60), int(rng.integers(2, 14)), (40, 40, 220), -1
            )
        cv2.imwrite(str(root / "images" / f"seq9_img{k + 1}.png"), img)
    model = build_toy_model(tmp_path / "toy.onnx", size=64)
    ds = pdata.discover(root, negative=True)
    r = ev.evaluate_set(Segmenter(model, provider="cpu"), None, "all", dataset=ds)
    log = tmp_path / "a.jsonl"
    assert (
        main(
            [
                "annotate",
                str(root / "images"),
                "-o",
                str(tmp_path / "a.mp4"),
                "--model",
                str(model),
                "--log",
                str(log),
                "--quiet",
            ]
        )
        == 0
    )
    logged = [json.loads(line)["polyp"] for line in log.read_text().splitlines()]
    assert len(logged) == 12 and 0 < sum(logged) < 12
    assert r["flagged_app"] == pytest.approx(sum(logged) / 12)
    flagged = {f"seq9_img{i + 1}" for i, p in enumerate(logged) if p}
    assert set(r["flagged_frames"]) == flagged
