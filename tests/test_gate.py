"""``polypvision gate``: a presence output fitted on a frozen model's own features (issue 22).

A small encoder-decoder graph built here (convolutions, ReLU/ReLU6, a Resize decoder, like the
exported encoder UNets) stands in for the shipped model: the features are found by the graph's
shape, the mask stays bit for bit the base's, the presence output is exactly the fitted
regression, and the command writes a contract with the presence output and a decision chosen on
validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_datasets import make_dataset, make_negatives
from toy_model import contract_doc

from polypvision import data as pdata

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
gate = pytest.importorskip("polypvision.training.gate")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

SIZE = 64


def build_unet(path, seed: int = 0):
    """image (N,64,64,3) -> conv/ReLU -> conv/ReLU6 -> bottleneck conv -> Resize, conv/ReLU ->
    Resize, conv/ReLU -> conv, sigmoid -> mask (N,64,64,1). The first convolution reads redness
    (R - G), so polyp and polyp-free frames differ in its features."""
    rng = np.random.default_rng(seed)

    def w(name, *shape, scale=0.5):
        return numpy_helper.from_array(rng.normal(0, scale, shape).astype(np.float32), name)

    w1 = rng.normal(0, 0.1, (4, 3, 3, 3)).astype(np.float32)
    w1[0, 0] += 1.0 / 9  # channel 0: mean redness
    w1[0, 1] -= 1.0 / 9
    inits = [
        numpy_helper.from_array(w1, "w1"),
        w("w2", 6, 4, 3, 3),
        w("w3", 5, 6, 1, 1),
        w("w4", 4, 5, 3, 3),
        w("w5", 3, 4, 3, 3),
        w("w6", 1, 3, 1, 1),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
        numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(6.0, np.float32), "hi"),
    ]
    n = helper.make_node
    nodes = [
        n("Transpose", ["image"], ["x"], perm=[0, 3, 1, 2]),
        n("Conv", ["x", "w1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        n("Relu", ["c1"], ["a1"]),
        n("Conv", ["a1", "w2"], ["c2"], strides=[2, 2], pads=[1, 1, 1, 1]),
        n("Clip", ["c2", "lo", "hi"], ["a2"]),
        n("Conv", ["a2", "w3"], ["enc"]),
        n("Resize", ["enc", "", "scales"], ["u1"], mode="nearest"),
        n("Conv", ["u1", "w4"], ["c4"], pads=[1, 1, 1, 1]),
        n("Relu", ["c4"], ["d0"]),
        n("Resize", ["d0", "", "scales"], ["u2"], mode="nearest"),
        n("Conv", ["u2", "w5"], ["c5"], pads=[1, 1, 1, 1]),
        n("Relu", ["c5"], ["d1"]),
        n("Conv", ["d1", "w6"], ["c6"]),
        n("Sigmoid", ["c6"], ["p"]),
        n("Transpose", ["p"], ["mask"], perm=[0, 2, 3, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-unet",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", SIZE, SIZE, 1])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    doc = contract_doc(SIZE, name="tiny-unet", architecture="tiny-unet")
    doc["output"].update(min_area=0.01, min_peak=0.6)  # an old pixel gate, turned off by gate
    doc["training"] = {"note": "untrained test fixture", "decision_candidates": [{"old": 1}]}
    helper.set_model_props(model, {"polypvision": json.dumps(doc)})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def gate_args(*argv):
    """``polypvision gate ARGV --threads 1`` as the real command line parses it."""
    from polypvision.cli import build_parser

    return build_parser().parse_args(["gate", *map(str, argv), "--threads", "1"])


def _run(proto, outputs, x):
    s = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(outputs, {"image": x})


def test_features_are_found_by_the_graphs_shape(tmp_path):
    proto = onnx.load(str(build_unet(tmp_path / "m.onnx")))
    assert gate.feature_tensors(proto) == {
        "expanded": "a1",  # two activations back from the bottleneck
        "encoder": "enc",
        "decoder_first": "d0",
        "decoder_last": "d1",
    }


def test_a_model_without_a_resize_decoder_is_refused_in_one_line(toy_model):
    with pytest.raises(gate.GateError, match="does not upsample with Resize") as e:
        gate.feature_tensors(onnx.load(str(toy_model)))
    assert "\n" not in str(e.value)


def test_the_mask_is_untouched_and_presence_is_the_fitted_regression(tmp_path):
    proto = onnx.load(str(build_unet(tmp_path / "m.onnx")))
    tensors = list(gate.feature_tensors(proto).values())
    featured = gate.add_features(proto, tensors, "mask", 0.5)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((12, SIZE, SIZE, 3)).astype(np.float32)
    x[:6, ..., 0] += 1.5  # six "red" frames
    mask0 = _run(proto, ["mask"], x)[0]
    mask1, feats = _run(featured, ["mask", gate.FEATURES], x)
    # 2 pooled (average, max) per channel of a1 (4), enc (5), d0 (4), d1 (3), then peak and area
    assert feats.shape == (12, 2 * (4 + 5 + 4 + 3) + 2)
    flat = mask0.reshape(12, -1)
    np.testing.assert_allclose(feats[:, -2], flat.max(1), rtol=0, atol=0)
    np.testing.assert_allclose(feats[:, -1], (flat > 0.5).mean(1), atol=1e-7)
    y = np.array([1] * 6 + [0] * 6)
    clf = gate.fit_logistic(feats, y, c=0.1)
    weight, bias = clf.folded()
    gated = gate.add_presence(featured, weight, bias)
    assert [o.name for o in gated.graph.output] == ["mask", "presence"]
    mask2, presence = _run(gated, ["mask", "presence"], x)
    assert np.array_equal(mask0, mask2)  # bit for bit
    assert presence.shape == (12, 1)
    np.testing.assert_allclose(presence[:, 0], clf(feats), atol=1e-5)
    assert presence[:6].min() > presence[6:].max()  # the red frames score higher


def test_fit_logistic_reaches_the_regularised_optimum():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 5)) * [1, 10, 0.1, 1, 1] + [0, 5, 0, 0, 0]
    y = (x[:, 0] + 0.3 * rng.standard_normal(300) > 0.4).astype(int)
    clf = gate.fit_logistic(x, y, c=0.5)
    # the gradient of the weighted, regularised loss vanishes at the solution
    xs = (x - clf.mean) / clf.std
    p = 1 / (1 + np.exp(-(xs @ clf.w + clf.b)))
    s = np.where(y > 0, len(y) / (2 * y.sum()), len(y) / (2 * (len(y) - y.sum())))
    grad_w = xs.T @ (s * (p - y)) + clf.w / 0.5
    grad_b = float(s @ (p - y))
    assert np.abs(grad_w).max() < 1e-3 and abs(grad_b) < 1e-3
    assert np.mean((clf(x) > 0.5) == y) > 0.85
    assert abs(clf.w[0]) == np.abs(clf.w).max()  # the informative feature carries the weight
    with pytest.raises(gate.GateError, match="one kind"):
        gate.fit_logistic(x, np.zeros(300), c=1.0)


def test_crop_pairs_cut_a_polyp_free_and_a_polyp_square_of_one_side():
    rng = np.random.default_rng(0)
    mask = np.zeros((120, 160), np.uint8)
    mask[40:70, 110:140] = 1  # a polyp at the right: the free strip is at the left
    img = np.repeat(
        mask[..., None], 3, axis=2
    )  # the mask as the picture: crops show what they hold
    for _ in range(20):
        crops, labels = gate.crop_pairs([img], [mask], rng)
        assert labels == [0, 1]
        free, polyp = crops
        assert free.shape == polyp.shape and free.shape[0] == free.shape[1] >= 40
        assert free.sum() == 0  # no polyp pixel in the polyp-free square
        assert polyp[..., 0].sum() == 30 * 30  # the whole polyp in the other
    top, left, side = gate.polyp_square(mask, 50, rng)
    assert side == 50 and top <= 40 and top + side >= 70 and left <= 110 and left + side >= 140
    assert gate.polyp_square(mask, 20, rng)[2] == 30  # at least the polyp's box
    assert gate.crop_pairs([img], [np.zeros_like(mask)], rng) == ([], [])
    wide = np.zeros((120, 160), np.uint8)
    wide[50:60, 5:150] = 1  # wider than the frame is tall: a square centred on it
    top, left, side = gate.polyp_square(wide, 40, rng)
    assert side == 120 and top == 0 and 0 <= left <= 40 and left + side <= 160


def test_sensitivity_at_keeps_every_polyp_free_dataset_under_the_target():
    scores = {
        "polyp": np.array([0.9, 0.8, 0.7, 0.2]),
        "a": np.linspace(0, 0.75, 100),  # 4.5% allowed: at most 4 of 100 at or over
        "b": np.zeros(10),
    }
    thr, sens = gate.sensitivity_at(scores, ["polyp"], ["a", "b"], 0.045)
    assert np.mean(scores["a"] >= thr) <= 0.045 and np.mean(scores["a"] >= thr) > 0.03
    assert thr > 0.7 and sens == 0.5  # the fifth-highest polyp-free score (0.72) beats 0.7


def test_gate_command_writes_a_gated_model_with_a_decision(tmp_path, capsys, monkeypatch):
    base = build_unet(tmp_path / "base.onnx")
    kv = make_dataset(tmp_path / "kvasir-seg", n_seq=6, per_seq=3, sequences=False)
    neg = make_negatives(tmp_path / "neg", n_seq=6, per_seq=3)
    specs = pdata.specs_from([str(kv)], [str(neg)])
    split = tmp_path / "split.json"
    pdata.load_splits(specs, split)
    out = tmp_path / "out" / "gated.onnx"
    args = gate_args(base, "-o", out, "--data", kv, "--negatives", neg, "--split-file", split)
    args.command_line = "polypvision gate ..."
    assert gate.run(args) == 0
    from polypvision.model.session import Segmenter

    seg = Segmenter(out, provider="cpu")
    c = seg.contract
    assert c.name == "gated" and c.output.presence == "presence"
    assert c.output.min_area == 0.0 and c.output.min_peak == 0.0  # the decision is the gate now
    assert c.output.decision is not None and c.output.decision.validation is not None
    doc = c.training["presence_gate"]
    assert doc["base_model"] == "tiny-unet" and doc["c"] in gate.C_GRID
    assert doc["frames"]["kvasir-seg"]["train"] > 0 and doc["command"] == "polypvision gate ..."
    assert c.training["decision_candidates"] != [{"old": 1}]
    assert "wrote" in capsys.readouterr().out
    # --crops adds squares of the training polyp frames, both kinds from each frame
    args.crops, args.output = True, str(tmp_path / "crops.onnx")
    assert gate.run(args) == 0
    doc2 = Segmenter(args.output, provider="cpu").contract.training["presence_gate"]
    assert doc2["crops"] is True and doc2["frames"]["kvasir-seg"]["train_squares"] > 0
    assert "train_squares" not in doc2["frames"]["neg"]
    args.crops = False
    # the frames' features are cached: a second run does not read them through the model again
    monkeypatch.setattr(gate, "extract", lambda *a, **k: pytest.fail("features not cached"))
    args.output = str(tmp_path / "again.onnx")
    assert gate.run(args) == 0
    assert Segmenter(args.output, provider="cpu").contract.output.decision == c.output.decision
    args.output = str(out)
    # a model that already has a presence output is refused, and nothing is overwritten
    before = out.read_bytes()
    args.model, args.output = str(out), str(out)
    with pytest.raises(gate.GateError, match="already has a presence output"):
        gate.run(args)
    assert out.read_bytes() == before


def test_bad_model_files_and_outputs_are_refused_in_one_line_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(gate, "extract", lambda *a, **k: pytest.fail("frames read"))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    kept = tmp_path / "kept.onnx"
    kept.write_bytes(b"earlier output")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    base = build_unet(tmp_path / "base.onnx")
    cases = [
        (junk, kept, "not a readable ONNX model"),
        (base, blocker / "out.onnx", "cannot create"),  # its folder would be inside a file
    ]
    for model, output, needle in cases:
        args = gate_args(model, "-o", output, "--data", "unused", "--negatives", "unused")
        with pytest.raises(gate.GateError, match=needle) as e:
            gate.run(args)
        assert "\n" not in str(e.value)
    assert kept.read_bytes() == b"earlier output"
