"""Export: ONNX parity with Keras, the contract in the metadata, and the app can load it."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.train
pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")

from polypvision.model.contract import METADATA_KEY, ModelContract  # noqa: E402
from polypvision.training import export  # noqa: E402
from polypvision.training.unet import build_unet  # noqa: E402

CONFIG = {"arch": "unet", "base_filters": 2, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    model = build_unet(2, input_size=32)
    contract = export.make_contract("tiny", CONFIG, 0.45, {"note": "test"}, {"dice": 0.1}, size=32)
    path = tmp_path_factory.mktemp("export") / "tiny.onnx"
    err = export.export_keras(model, contract, path)
    return model, contract, path, err


def test_parity_keras_vs_onnx(exported):
    model, _, path, err = exported
    assert err <= 1e-4
    import onnxruntime as ort

    x = (
        np.random.default_rng(1).uniform(-2, 2, size=(3, 32, 32, 3)).astype(np.float32)
    )  # batch 3: dynamic batch
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["mask"], {"image": x})[0]
    assert got.shape == (3, 32, 32, 1)
    assert np.max(np.abs(got - np.asarray(model(x, training=False)))) <= 1e-4


def test_graph_names_and_contract_round_trip(exported):
    import onnx

    _, contract, path, _ = exported
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert [i.name for i in proto.graph.input] == ["image"]
    assert [o.name for o in proto.graph.output] == ["mask"]
    assert proto.opset_import[0].version == 17
    meta = {p.key: p.value for p in proto.metadata_props}
    back = ModelContract.from_json(meta[METADATA_KEY])
    assert back == contract
    assert back.to_dict()["input"]["height"] == 32 and back.output.threshold == 0.45


def test_runtime_loads_and_runs_it(exported):
    from polypvision.model.session import Segmenter

    _, contract, path, _ = exported
    seg = Segmenter(path, provider="cpu", threads=1)
    assert seg.contract == contract
    frames = [np.full((50, 70, 3), 90, np.uint8), np.zeros((20, 30, 3), np.uint8)]
    probs = seg.predict(frames)
    assert [p.shape for p in probs] == [(50, 70), (20, 30)]
    assert all(p.min() >= 0.0 and p.max() <= 1.0 for p in probs)


def test_parity_failure_writes_nothing(tmp_path, monkeypatch):
    model = build_unet(2, input_size=32)
    contract = export.make_contract("tiny", CONFIG, 0.5, {}, size=32)
    monkeypatch.setattr(export, "parity", lambda *a, **k: 1.0)
    with pytest.raises(export.ExportError, match="differs"):
        export.export_keras(model, contract, tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []
