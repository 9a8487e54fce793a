"""Augmentation for endoscopy frames, as TensorFlow ops inside ``tf.data``.

Chosen for what changes between colonoscopes and procedures: orientation (the scope
rotates freely, so flips and 90-degree rotations are label-preserving), distance to the
polyp (scale/crop), illumination and white balance (brightness, contrast, saturation,
a small hue shift: polyps and mucosa differ in hue, so large shifts would destroy the
cue), motion and focus blur, and specular highlights (the light source's reflections,
which models otherwise learn to take for polyp edges).

Input: RGB uint8 image HxWx3 and uint8 mask HxWx1 (0/1), or HxWx2 with a teacher's probability
x 255 as the second channel. Output: float32 image in [0, 1] and float32 mask (0/1, then the
teacher's probability in [0, 1]), both ``size x size``. Normalisation (mean/std) is applied
afterwards, by the architecture's own constants.
"""

from __future__ import annotations

import tensorflow as tf

FOREGROUND_P = 0.67
FULL_FRAME_P = 0.25


def _random_box(
    h: tf.Tensor, w: tf.Tensor, min_scale: float, view: float = 1.0, mask: tf.Tensor | None = None
) -> tf.Tensor:
    """A normalised crop box covering ``min_scale..1`` of each side
    (the full frame ``FULL_FRAME_P`` of the time).

    ``view`` < 1 shrinks every box by that factor: a patch of the frame at the same zoom as a
    full view would have, so a network trained on patches sees polyps at the scale it meets at
    inference (training on whole frames at half the input size halves that scale, and the
    full-size model then fails). Patches then often miss the polyp, and the per-image Dice term
    of the loss punishes any output on an empty patch so hard that a network can learn to predict
    nothing. So with ``mask`` given, ``FOREGROUND_P`` of the patches are placed to
    contain a random polyp pixel (nnU-Net's foreground oversampling).
    """
    s = tf.random.uniform([], min_scale, 1.0)
    aspect = tf.exp(tf.random.uniform([], -0.15, 0.15))
    sy = tf.minimum(1.0, s * aspect)
    sx = tf.minimum(1.0, s / aspect)
    full = tf.random.uniform([]) < FULL_FRAME_P
    sy = tf.where(full, 1.0, sy) * view
    sx = tf.where(full, 1.0, sx) * view
    y0 = tf.random.uniform([]) * (1.0 - sy)
    x0 = tf.random.uniform([]) * (1.0 - sx)
    if mask is not None and view < 1.0:
        fg = tf.where(mask[..., 0] > 0)
        use = tf.logical_and(tf.shape(fg)[0] > 0, tf.random.uniform([]) < FOREGROUND_P)

        def _around_polyp():
            i = tf.random.uniform([], 0, tf.maximum(tf.shape(fg)[0], 1), dtype=tf.int32)
            cy = (tf.cast(fg[i, 0], tf.float32) + 0.5) / tf.cast(h, tf.float32)
            cx = (tf.cast(fg[i, 1], tf.float32) + 0.5) / tf.cast(w, tf.float32)
            fy, fx = tf.random.uniform([], 0.15, 0.85), tf.random.uniform([], 0.15, 0.85)
            return (
                tf.clip_by_value(cy - fy * sy, 0.0, 1.0 - sy),
                tf.clip_by_value(cx - fx * sx, 0.0, 1.0 - sx),
            )

        y0, x0 = tf.cond(use, _around_polyp, lambda: (y0, x0))
    return tf.stack([y0, x0, y0 + sy, x0 + sx])


def _gaussian_blur(img: tf.Tensor, sigma: tf.Tensor, radius: int = 3) -> tf.Tensor:
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    k = tf.exp(-(x**2) / (2.0 * sigma**2))
    k = k / tf.reduce_sum(k)
    kh = tf.tile(tf.reshape(k, [1, -1, 1, 1]), [1, 1, 3, 1])
    kv = tf.tile(tf.reshape(k, [-1, 1, 1, 1]), [1, 1, 3, 1])
    b = img[None]
    b = tf.nn.depthwise_conv2d(b, kh, [1, 1, 1, 1], "SAME")
    b = tf.nn.depthwise_conv2d(b, kv, [1, 1, 1, 1], "SAME")
    return b[0]


def _specular(img: tf.Tensor, size: int) -> tf.Tensor:
    """Add 1-5 small saturated white blobs, like the light's reflections on wet mucosa."""
    n = tf.random.uniform([], 1, 6, dtype=tf.int32)
    yy, xx = tf.meshgrid(
        tf.range(size, dtype=tf.float32), tf.range(size, dtype=tf.float32), indexing="ij"
    )
    cy = tf.random.uniform([n, 1, 1], 0, size)
    cx = tf.random.uniform([n, 1, 1], 0, size)
    ry = tf.random.uniform([n, 1, 1], 1.5, size / 28)
    rx = tf.random.uniform([n, 1, 1], 1.5, size / 28)
    blobs = tf.exp(-(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2))
    alpha = tf.clip_by_value(tf.reduce_max(blobs, axis=0) * 1.6, 0.0, 1.0)[..., None]
    return img * (1.0 - alpha) + alpha


def augment(
    image: tf.Tensor, mask: tf.Tensor, size: int, min_scale: float = 0.55, view: float = 1.0
) -> tuple[tf.Tensor, tf.Tensor]:
    """One random view of one (image, mask) pair, ``size`` x ``size``;
    see the module docstring for why each.

    ``view`` = crop / model input size when training on patches (``train --crop-size``).
    """
    shape = tf.shape(image)
    box = _random_box(shape[0], shape[1], min_scale, view, mask)[None]
    img = tf.image.crop_and_resize(
        tf.cast(image, tf.float32)[None] / 255.0, box, [0], [size, size], "bilinear"
    )[0]
    msk = tf.image.crop_and_resize(
        tf.cast(mask, tf.float32)[None], box, [0], [size, size], "bilinear"
    )[0]
    # Channel 0 is the 0/1 ground truth; a second channel, if any, is a teacher's probability x 255
    # (distillation), kept soft.
    msk = tf.concat([tf.cast(msk[..., :1] > 0.5, tf.float32), msk[..., 1:] / 255.0], axis=-1)

    both = tf.concat([img, msk], axis=-1)
    both = tf.cond(
        tf.random.uniform([]) < 0.5, lambda: tf.image.flip_left_right(both), lambda: both
    )
    both = tf.cond(tf.random.uniform([]) < 0.5, lambda: tf.image.flip_up_down(both), lambda: both)
    both = tf.image.rot90(both, tf.random.uniform([], 0, 4, dtype=tf.int32))
    img, msk = both[..., :3], both[..., 3:]

    img = tf.image.random_brightness(img, 0.12)
    img = tf.image.random_contrast(img, 0.75, 1.3)
    img = tf.image.random_saturation(img, 0.75, 1.25)
    img = tf.image.random_hue(img, 0.03)
    gamma = tf.exp(tf.random.uniform([], -0.25, 0.25))
    img = tf.clip_by_value(img, 0.0, 1.0) ** gamma
    img = tf.cond(
        tf.random.uniform([]) < 0.25,
        lambda: _gaussian_blur(img, tf.random.uniform([], 0.5, 1.6)),
        lambda: img,
    )
    img = tf.cond(tf.random.uniform([]) < 0.3, lambda: _specular(img, size), lambda: img)
    img = tf.clip_by_value(img, 0.0, 1.0)
    img = tf.ensure_shape(img, [size, size, 3])
    msk = tf.ensure_shape(msk, [size, size, mask.shape[-1]])
    return img, msk


def normalise(img: tf.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> tf.Tensor:
    """(x - mean) / std on an image already scaled to [0, 1]: the contract's preprocessing."""
    return (img - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)
