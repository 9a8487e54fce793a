"""``polypvision ensemble``:
averaged members in one ONNX file that the runtime loads like any model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_datasets import make_dataset
from toy_model import build_toy_model, contract_doc

from polypvision.model.session import Segmenter
from polypvision.training import ensemble
from polypvision.training.weights import sha256_of

pytest.importorskip("onnx")


def _members(tmp_path, size=64, layout="NHWC"):
    """Two toy members with different input scaling and output kinds
    (the ensemble must honour both)."""
    a = build_toy_model(tmp_path / "a.onnx", size, gain=12.0, bias=-2.0, layout=layout)
    doc = contract_doc(size, layout, training={"val_dice_at_0.5": 0.7})
    doc["input"].update(
        scale=1.0, mean=[127.0, 100.0, 90.0], std=[64.0, 50.0, 70.0]
    )  # raw-pixel scaling
    # read as logits: the runtime (and the ensemble) apply a sigmoid
    doc["output"]["kind"] = "logit"
    b = build_toy_model(tmp_path / "b.onnx", size, gain=3.0, bias=0.5, contract=doc, layout=layout)
    return a, b


def _fix_batch(path, batch=1):
    import onnx

    m = onnx.load(str(path))
    for vi in (*m.graph.input, *m.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_value = batch
    onnx.save(m, str(path))
    return path


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_ensemble_equals_the_mean_of_its_members_through_the_app(tmp_path, layout):
    a, b = _members(tmp_path, layout=layout)
    out = tmp_path / "ens.onnx"
    r = ensemble.build([a, b], out, command="polypvision ensemble a.onnx b.onnx -o ens.onnx")
    assert r["parity"] <= ensemble.PARITY_TOL and out.is_file()
    frames = [np.random.default_rng(i).integers(0, 256, (90, 120, 3), np.uint8) for i in range(3)]
    got = Segmenter(out, "cpu").predict(frames)
    pa, pb = Segmenter(a, "cpu").predict(frames), Segmenter(b, "cpu").predict(frames)
    for g, x, y in zip(got, pa, pb):
        assert g.shape == (90, 120)
        np.testing.assert_allclose(g, (x + y) / 2.0, atol=1e-5)
    assert not np.allclose(pa[0], pb[0], atol=1e-2)  # the members really differ
    c = Segmenter(out, "cpu").contract
    assert (
        c.architecture == "ensemble(toy+toy)"
        and c.output.kind == "probability"
        and c.output.threshold == 0.5
    )
    assert c.input.layout == layout and c.input.scale == 1.0
    assert [m["sha256"] for m in c.training["members"]] == [sha256_of(a), sha256_of(b)]
    assert c.training["command"] == ["polypvision ensemble a.onnx b.onnx -o ens.onnx"]


def test_ensemble_measures_validation_dice_and_stores_metrics(tmp_path):
    data = make_dataset(tmp_path / "toydb", n_seq=8, per_seq=3)
    a, b = _members(tmp_path)
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({"split": "test", "mean": {"dice": 0.5}}))
    out = tmp_path / "ens.onnx"
    r = ensemble.build(
        [a, b],
        out,
        data=data,
        split_file=tmp_path / "split.json",
        metrics=json.loads(metrics.read_text()),
    )
    c = Segmenter(out, "cpu").contract
    assert 0.0 < r["val_dice_at_0.5"] <= 1.0
    assert c.training["val_dice_at_0.5"] == pytest.approx(r["val_dice_at_0.5"])
    assert c.metrics == {"split": "test", "mean": {"dice": 0.5}}


def test_mismatched_members_are_refused_and_existing_output_kept(tmp_path):
    a = build_toy_model(tmp_path / "a.onnx", 64)
    small = build_toy_model(tmp_path / "small.onnx", 32)
    out = tmp_path / "ens.onnx"
    out.write_bytes(b"previous file")
    with pytest.raises(ensemble.EnsembleError, match="height"):
        ensemble.build([a, small], out)
    with pytest.raises(ensemble.EnsembleError, match="at least two"):
        ensemble.build([a], out)
    with pytest.raises(ensemble.EnsembleError, match="also a member"):
        ensemble.build([a, out], out)
    assert out.read_bytes() == b"previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx", "ens.onnx", "small.onnx"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    from polypvision import cli_train

    a = build_toy_model(tmp_path / "a.onnx", 64)
    no_contract = build_toy_model(tmp_path / "plain.onnx", 64, contract=None)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    cases = [
        ([str(a), str(tmp_path / "missing.onnx")], "no such model file"),
        ([str(a), str(no_contract)], "no polypvision contract"),
        ([str(a), str(tmp_path / "junk.onnx")], "not an ONNX model"),
    ]
    for members, text in cases:
        rc = cli_train.main(["ensemble", *members, "-o", str(tmp_path / "e.onnx")])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and text in err and len(err.splitlines()) == 1
    assert (
        cli_train.main(
            ["ensemble", str(a), str(a), "-o", str(tmp_path / "e.onnx"), "--threshold", "1.5"]
        )
        == 2
    )
    assert "between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "e.onnx").exists()


def test_refitted_members_have_no_validation_left(tmp_path):
    """Members trained on train + val: --data would score training data,
    so only the recipe's figure is taken."""
    data = make_dataset(tmp_path / "toydb", n_seq=8, per_seq=3)
    doc = contract_doc(64, training={"val_dice_at_0.5": 0.8, "refit": {"of": "runs/x"}})
    a = build_toy_model(tmp_path / "a.onnx", 64, contract=doc)
    b = build_toy_model(tmp_path / "b.onnx", 64, gain=3.0)
    out = tmp_path / "ens.onnx"
    with pytest.raises(ensemble.EnsembleError, match="refit"):
        ensemble.build([a, b], out, data=data, split_file=tmp_path / "s.json")
    assert not out.exists()
    ensemble.build([a, b], out, recipe_val_dice=0.81)
    c = Segmenter(out, "cpu").contract
    assert c.training["val_dice_at_0.5"] == 0.81 and "recipe" in c.training["val_dice_source"]
    plain = build_toy_model(tmp_path / "c.onnx", 64)
    with pytest.raises(ensemble.EnsembleError, match="only for members refitted"):
        ensemble.build([plain, b], tmp_path / "e2.onnx", recipe_val_dice=0.81)


def test_members_of_other_opsets_or_output_shapes_are_refused(tmp_path):
    import onnx

    a = build_toy_model(tmp_path / "a.onnx", 64)
    b = build_toy_model(tmp_path / "b.onnx", 64, gain=3.0)
    m = onnx.load(str(b))
    m.opset_import[0].version = 18
    onnx.save(m, str(tmp_path / "b18.onnx"))
    with pytest.raises(ensemble.EnsembleError, match="opset 18"):
        ensemble.build([a, tmp_path / "b18.onnx"], tmp_path / "e.onnx")
    m = onnx.load(str(b))
    m.graph.output[0].type.tensor_type.shape.dim.pop()  # (N, H, W) instead of (N, H, W, 1)
    onnx.save(m, str(tmp_path / "b3.onnx"))
    with pytest.raises(ensemble.EnsembleError, match="rank 3"):
        ensemble.build([a, tmp_path / "b3.onnx"], tmp_path / "e.onnx")
    with pytest.raises(ensemble.EnsembleError, match="recipe-val-dice"):
        ensemble.build([a, b], tmp_path / "e.onnx", recipe_val_dice=82.2)
    assert not (tmp_path / "e.onnx").exists()


def test_a_fixed_batch_member_makes_a_fixed_batch_ensemble_that_the_app_runs(tmp_path):
    a, b = _members(tmp_path)
    _fix_batch(b)
    out = tmp_path / "ens.onnx"
    assert ensemble.build([a, b], out)["parity"] <= ensemble.PARITY_TOL
    frames = [np.random.default_rng(i).integers(0, 256, (40, 50, 3), np.uint8) for i in range(3)]
    got = Segmenter(out, "cpu").predict(
        frames
    )  # the runtime feeds a fixed-batch model frame by frame
    want = [
        (x + y) / 2
        for x, y in zip(Segmenter(a, "cpu").predict(frames), Segmenter(b, "cpu").predict(frames))
    ]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-5)
