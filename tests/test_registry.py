from __future__ import annotations

import json

import pytest
from toy_model import build_toy_model, contract_doc

from polypvision.errors import ContractError
from polypvision.model.registry import default_model


def _model(folder, name, dice, size=64):
    doc = contract_doc(
        size, training={"val_dice_at_0.5": dice}, metrics={"mean": {"dice": 1.0 - dice}}
    )
    return build_toy_model(folder / name, size, contract=doc)


def test_manifest_default_and_errors(tmp_path):
    with pytest.raises(ContractError, match="manifest.json"):
        default_model("cpu", tmp_path)
    _model(tmp_path, "a.onnx", 0.7)
    (tmp_path / "manifest.json").write_text(json.dumps({"cpu_default": "a.onnx"}))
    assert default_model("cuda", tmp_path).name == "a.onnx"  # falls back to the CPU default
    (tmp_path / "manifest.json").write_text(json.dumps({"cpu_default": "gone.onnx"}))
    with pytest.raises(ContractError, match="missing"):
        default_model("cpu", tmp_path)


def test_the_app_opens_one_session_the_manifests_default(tmp_path, monkeypatch):
    """One model policy for the CLI and the app (issue 23): the window's loader takes the
    manifest's default and opens one session, whatever else is shipped (it used to open and time
    every shipped model at start-up and pick by chance between two of similar speed)."""
    import polypvision.viewer.opening as opening

    _model(tmp_path, "a.onnx", 0.9)
    _model(tmp_path, "b.onnx", 0.7)
    (tmp_path / "manifest.json").write_text(json.dumps({"cpu_default": "b.onnx"}))
    monkeypatch.setenv("POLYPVISION_MODELS", str(tmp_path))
    opened = []
    real = opening.Segmenter

    def counting(path, *a, **k):
        opened.append(str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(opening, "Segmenter", counting)
    seg = opening.load_blocking(None, "cpu")
    assert seg.path.name == "b.onnx" and opened == [str(tmp_path / "b.onnx")]
