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
    data = make_dataset(tmp_path / "toydb", n_seq=8, per_seq=3)
    model = build_toy_model(tmp_path / "toy.onnx", size=64)
    args = SimpleNamespace(model=str(model), data=str(data), split="test", split_file=str(tmp_path / "split.json"),
                           out=str(tmp_path / "r.md"), json=str(tmp_path / "r.json"), threshold=None,
                           provider="cpu", threads=1, batch=4, tta=True)
    assert ev.run(args) == 0
    md = (tmp_path / "r.md").read_text()
    assert "| mean over images |" in md and "research code" in md and "Threshold sweep" in md
    assert "background" in md
    doc = json.loads((tmp_path / "r.json").read_text())
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
    assert "pip install -e '.[train]'" in capsys.readouterr().err
