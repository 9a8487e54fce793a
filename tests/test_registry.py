from __future__ import annotations

import json

import pytest
from toy_model import build_toy_model, contract_doc

from polypvision.errors import ContractError
from polypvision.model.registry import default_model, pick_realtime


def _model(folder, name, dice, size=64):
    doc = contract_doc(size, training={"val_dice_at_0.5": dice}, metrics={"mean": {"dice": 1.0 - dice}})
    return build_toy_model(folder / name, size, contract=doc)


def test_pick_realtime_prefers_accuracy_within_budget(tmp_path):
    """Accuracy is the validation Dice in the contract; the test metrics (inverted here) never choose."""
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


def test_pick_realtime_skips_timing_a_model_far_slower_than_one_already_timed(tmp_path, monkeypatch):
    """A cold call 3x slower than a timed candidate ends that candidate's timing (start-up stays quick)."""
    import time
    from types import SimpleNamespace

    import polypvision.model.session as session

    _model(tmp_path, "accurate_slow.onnx", 0.9)
    _model(tmp_path, "fast.onnx", 0.5)
    _model(tmp_path, "huge.onnx", 0.4)
    delay = {"accurate_slow.onnx": 0.03, "fast.onnx": 0.002, "huge.onnx": 0.05}
    calls: dict[str, int] = {}
    real = session.Segmenter

    class FakeSegmenter:
        def __init__(self, path, provider, **kw):
            self._name, self.path = path.name, path
            self.contract = real(path, "cpu").contract

        def predict_small(self, frames):
            calls[self._name] = calls.get(self._name, 0) + 1
            time.sleep(delay[self._name])
            return [SimpleNamespace()]

    monkeypatch.setattr(session, "Segmenter", FakeSegmenter)
    path, reason = pick_realtime("cpu", target_fps=1000.0, folder=tmp_path)  # nothing meets 0.6 ms
    assert path.name == "fast.onnx" and "fastest" in reason
    assert calls == {"accurate_slow.onnx": 4, "fast.onnx": 4, "huge.onnx": 1}
