from __future__ import annotations

import json

import numpy as np
import pytest
from toy_model import build_toy_model, contract_doc

from polypvision.errors import ContractError
from polypvision.model.contract import ModelContract
from polypvision.model.session import Segmenter


def test_round_trip():
    doc = contract_doc(256)
    c = ModelContract.from_dict(doc)
    again = ModelContract.from_json(c.to_json())
    assert again == c
    assert again.input.mean == (0.0, 0.0, 0.0) and again.input.height == 256
    assert json.loads(c.to_json())["input"]["std"] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda d: d.pop("input"), "'input' is missing"),
        (lambda d: d.__setitem__("schema", 2), "schema 2"),
        (lambda d: d["input"].__setitem__("layout", "HWC"), "layout"),
        (lambda d: d["input"].__setitem__("color", "YUV"), "color"),
        (lambda d: d["input"].__setitem__("std", [1, 0, 1]), "std"),
        (lambda d: d["input"].__setitem__("height", -3), "height"),
        (lambda d: d["output"].__setitem__("threshold", 1.5), "threshold"),
        (lambda d: d["output"].__setitem__("kind", "softmax"), "kind"),
    ],
)
def test_invalid_contracts_are_named(mutate, needle):
    doc = contract_doc(64)
    mutate(doc)
    with pytest.raises(ContractError, match=needle):
        ModelContract.from_dict(doc)


def test_not_json():
    with pytest.raises(ContractError, match="not valid JSON"):
        ModelContract.from_json("{nope")


def test_segmenter_reads_contract_and_runs(toy_model):
    seg = Segmenter(toy_model, "cpu")
    assert seg.contract.name == "toy-redness"
    assert seg.provider == "CPU" and "CPU requested" in str(seg.report)
    red = np.zeros((48, 80, 3), np.uint8)
    red[..., 2] = 220  # BGR: strongly red
    grey = np.full((100, 30, 3), 128, np.uint8)
    p_red, p_grey = seg.predict([red, grey])
    assert p_red.shape == (48, 80) and p_grey.shape == (100, 30)
    assert p_red.min() > 0.9 and p_grey.max() < 0.2


def test_auto_provider_reports_why_cpu(toy_model):
    seg = Segmenter(toy_model, "auto")
    assert seg.provider in ("CPU", "CUDA")
    if seg.provider == "CPU":
        assert "CUDA" in seg.report.reason  # says why CUDA is not running


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"contract": None}, "no 'polypvision' contract"),
        ({"contract": "{bad json"}, "not valid JSON"),
        ({"graph_size": 32}, "height 32 but the contract says 64"),
        ({"contract": contract_doc(64, layout="NCHW")}, "channels|height|width"),
    ],
)
def test_model_graph_mismatch(tmp_path, kwargs, needle):
    path = build_toy_model(tmp_path / "m.onnx", 64, **kwargs)
    with pytest.raises(ContractError, match=needle):
        Segmenter(path, "cpu")


def test_missing_corrupt_empty_model(tmp_path):
    with pytest.raises(ContractError, match="not found"):
        Segmenter(tmp_path / "nope.onnx", "cpu")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ContractError, match="empty"):
        Segmenter(tmp_path / "empty.onnx", "cpu")
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ContractError, match="not a loadable ONNX model"):
        Segmenter(tmp_path / "junk.onnx", "cpu")


def test_nan_outputs_become_zero(tmp_path):
    path = build_toy_model(tmp_path / "nan.onnx", 64, nan=True)
    seg = Segmenter(path, "cpu")
    (p,) = seg.predict([np.zeros((64, 64, 3), np.uint8)])
    assert np.isfinite(p).all() and p.max() == 0.0


def test_nchw_layout_model_runs(tmp_path):
    path = build_toy_model(tmp_path / "nchw.onnx", 32, layout="NCHW")
    seg = Segmenter(path, "cpu")
    img = np.zeros((40, 40, 3), np.uint8)
    img[..., 2] = 250
    (p,) = seg.predict([img])
    assert p.shape == (40, 40) and p.min() > 0.9
