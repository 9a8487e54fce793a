from __future__ import annotations

import json

import pytest
from toy_model import build_toy_model, contract_doc

from polypvision.errors import ContractError
from polypvision.model.registry import default_model, pick_realtime


def _model(folder, name, dice, size=64):
    doc = contract_doc(size, metrics={"mean": {"dice": dice}})
    return build_toy_model(folder / name, size, contract=doc)


def test_pick_realtime_prefers_accuracy_within_budget(tmp_path):
    _model(tmp_path, "a.onnx", 0.70)
    _model(tmp_path, "b.onnx", 0.85)
    path, reason = pick_realtime("cpu", target_fps=1.0, folder=tmp_path)  # generous budget
    assert path.name == "b.onnx" and "most accurate" in reason
    path, reason = pick_realtime("cpu", target_fps=1e9, folder=tmp_path)  # impossible budget
    assert "fastest" in reason


def test_manifest_default_and_errors(tmp_path):
    with pytest.raises(ContractError, match="manifest.json"):
        default_model("cpu", tmp_path)
    _model(tmp_path, "a.onnx", 0.7)
    (tmp_path / "manifest.json").write_text(json.dumps({"cpu_default": "a.onnx"}))
    assert default_model("cuda", tmp_path).name == "a.onnx"  # falls back to the CPU default
    (tmp_path / "manifest.json").write_text(json.dumps({"cpu_default": "gone.onnx"}))
    with pytest.raises(ContractError, match="missing"):
        default_model("cpu", tmp_path)
    with pytest.raises(ContractError, match="no shipped models"):
        pick_realtime("cpu", folder=tmp_path / "empty")
