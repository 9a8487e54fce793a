"""The seed UNet is reproduced exactly, and widths scale with ``base_filters``."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.train
pytest.importorskip("tensorflow")

from polypvision.training.unet import build_unet  # noqa: E402


def _seed_layer_list(f: int) -> list[tuple]:
    """The layer list of ../shared/seed_unet.md, written out by hand at width ``f``."""
    inp = [("InputLayer",)]

    def block(n):
        return [
            ("Conv2D", n, (3, 3), "relu"),
            ("BatchNormalization",),
            ("Conv2D", n, (3, 3), "relu"),
            ("BatchNormalization",),
        ]

    enc = []
    for n in (f, 2 * f, 4 * f):
        enc += block(n) + [("MaxPooling2D",)]
    bridge = [
        ("Conv2D", 8 * f, (1, 1), "relu"),
        ("BatchNormalization",),
        ("Conv2D", 8 * f, (1, 1), "relu"),
        ("BatchNormalization",),
    ]
    dec = []
    for n in (4 * f, 2 * f, f):
        dec += [("Conv2DTranspose", n, (2, 2), "linear"), ("Concatenate",)] + block(n)
    return inp + enc + bridge + dec + [("Conv2D", 1, (1, 1), "sigmoid")]


def _layer_list(model) -> list[tuple]:
    out = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "Conv2DTranspose"):
            cfg = layer.get_config()
            out.append((kind, cfg["filters"], tuple(cfg["kernel_size"]), cfg["activation"]))
        else:
            out.append((kind,))
    return out


@pytest.mark.parametrize("base, params", [(64, 4_562_881), (16, 288_241)])
def test_unet_matches_seed(base, params):
    model = build_unet(base)
    assert model.count_params() == params
    assert _layer_list(model) == _seed_layer_list(base)
    assert model.input_shape == (None, 256, 256, 3) and model.output_shape == (None, 256, 256, 1)


def test_seed_details_padding_strides_bn():
    model = build_unet(64)
    convs = [lay for lay in model.layers if type(lay).__name__ == "Conv2D"]
    assert all(c.get_config()["padding"] == "same" for c in convs[:-1])
    assert (
        convs[-1].get_config()["padding"] == "valid"
    )  # the seed's 1x1 output conv keeps the default
    ups = [lay for lay in model.layers if type(lay).__name__ == "Conv2DTranspose"]
    assert all(tuple(u.get_config()["strides"]) == (2, 2) for u in ups)
    bns = [lay for lay in model.layers if type(lay).__name__ == "BatchNormalization"]
    assert len(bns) == 14 and all(
        b.epsilon == pytest.approx(1e-3) for b in bns
    )  # Keras defaults, as the seed


def test_unet_is_fully_convolutional():
    model = build_unet(2, input_size=None)
    import numpy as np

    assert model(np.zeros((1, 32, 48, 3), np.float32)).shape == (1, 32, 48, 1)


@pytest.mark.parametrize(
    "name, params", [("mobilenetv2", 2_448_089), ("efficientnet-lite0", 3_621_561)]
)
def test_pretrained_encoder_unets_build_with_their_contract(name, params):
    """Each ImageNet-encoder UNet builds untrained, maps NxHxWx3 to NxHxWx1,
    and its size rule holds."""
    import numpy as np

    from polypvision.training import encoders

    arch = encoders.get(name)
    model = arch.build(input_size=64, pretrained=False)
    assert model.count_params() == params
    assert model(np.zeros((2, 64, 64, 3), np.float32)).shape == (2, 64, 64, 1)
    assert arch.pretrained and arch.size_multiple == 32 and "ImageNet" in arch.weights_licence
    assert all(0 < m < 1 and 0 < s < 1 for m, s in zip(arch.mean, arch.std, strict=True))
    encoders.set_encoder_trainable(model, False)
    assert not any(la.trainable_weights for la in encoders.encoder_layers(model))
    assert any(la.trainable_weights for la in model.layers if la.name.startswith("decoder"))


def test_cli_offers_every_registered_architecture():
    """``train --arch`` choices are written out (no TensorFlow import at parse time):
    keep them in step."""
    import argparse

    from polypvision import cli_train
    from polypvision.training import encoders

    subparsers = argparse.ArgumentParser().add_subparsers()
    cli_train.register(subparsers)
    action = next(a for a in subparsers.choices["train"]._actions if a.dest == "arch")
    assert list(action.choices) == list(encoders.REGISTRY)
