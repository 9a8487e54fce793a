"""The research UNet (``../shared/seed_unet.md``), with every width scalable.

At ``base_filters=64`` the layer list is exactly the research code's (4,562,881
parameters), so results can be compared with its table. Smaller bases scale every
width (16 gives 288,241 parameters): the real-time variant for CPUs. The network is
fully convolutional: ``input_size=None`` builds it for any size divisible by 8, which is
how it is trained at a lower resolution first and fine-tuned at 256.
"""

from __future__ import annotations

import keras
from keras import layers


def _block(x, filters: int):
    """Conv(relu) -> BN, twice: the research code's order (activation before BN)."""
    for _ in range(2):
        x = layers.Conv2D(filters, 3, activation="relu", padding="same")(x)
        x = layers.BatchNormalization()(x)
    return x


def build_unet(
    base_filters: int = 64, input_size: int | None = 256, name: str | None = None
) -> keras.Model:
    """The seed UNet: 3 down, a 1x1 bridge, 3 up, sigmoid output of one channel."""
    f = base_filters
    inputs = keras.Input(shape=(input_size, input_size, 3), name="image")
    conv1 = _block(inputs, f)
    pool1 = layers.MaxPooling2D(pool_size=(2, 2))(conv1)
    conv2 = _block(pool1, 2 * f)
    pool2 = layers.MaxPooling2D(pool_size=(2, 2))(conv2)
    conv3 = _block(pool2, 4 * f)
    pool3 = layers.MaxPooling2D(pool_size=(2, 2))(conv3)

    bridge = layers.Conv2D(8 * f, 1, activation="relu", padding="same")(pool3)
    bridge = layers.BatchNormalization()(bridge)
    bridge = layers.Conv2D(8 * f, 1, activation="relu", padding="same")(bridge)
    bridge = layers.BatchNormalization()(bridge)

    x = bridge
    for skip, width in ((conv3, 4 * f), (conv2, 2 * f), (conv1, f)):
        up = layers.Conv2DTranspose(width, (2, 2), strides=(2, 2), padding="same")(x)
        x = layers.Concatenate(axis=3)([up, skip])
        x = _block(x, width)

    outputs = layers.Conv2D(1, 1, activation="sigmoid", name="mask")(x)
    return keras.Model(inputs=inputs, outputs=outputs, name=name or f"unet{base_filters}")
