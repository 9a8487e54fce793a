"""The training losses, and the one a run's config names (:func:`loss_of`).

A module of its own so that the epoch loop (:mod:`polypvision.training.loop`), which compiles the
model, and the ``train`` command both take the loss from here: a command module is never a
library.
"""

from __future__ import annotations

from typing import Any


def bce_dice_loss(y_true, y_pred):
    """Binary cross-entropy plus (1 - soft Dice per image): pixels and overlap both count."""
    import keras
    from keras import ops

    y_true = ops.cast(y_true, y_pred.dtype)
    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred))
    inter = ops.sum(y_true * y_pred, axis=(1, 2, 3))
    denom = ops.sum(y_true, axis=(1, 2, 3)) + ops.sum(y_pred, axis=(1, 2, 3))
    dice = (2.0 * inter + 1.0) / (denom + 1.0)
    return bce + (1.0 - ops.mean(dice))


def structure_loss(y_true, y_pred):
    """PraNet's boundary-aware loss: BCE and soft IoU,
    each pixel weighted by 1 + 5 |avgpool31(mask) - mask|.

    The weight is high within ~15 pixels of the polyp's border, where masks are wrong most often
    and where the plain loss's error is a thin sliver that barely counts.
    """
    import keras
    from keras import ops

    y_true = ops.cast(y_true, y_pred.dtype)
    weit = 1.0 + 5.0 * ops.abs(
        keras.layers.AveragePooling2D(31, strides=1, padding="same")(y_true) - y_true
    )
    eps = 1e-7
    p = ops.clip(y_pred, eps, 1.0 - eps)
    bce = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
    wbce = ops.sum(weit * bce, axis=(1, 2, 3)) / ops.sum(weit, axis=(1, 2, 3))
    inter = ops.sum(y_pred * y_true * weit, axis=(1, 2, 3))
    union = ops.sum((y_pred + y_true) * weit, axis=(1, 2, 3))
    wiou = 1.0 - (inter + 1.0) / (union - inter + 1.0)
    return ops.mean(wbce + wiou)


LOSSES = {"bce-dice": bce_dice_loss, "structure": structure_loss}


def loss_of(config: dict[str, Any]):
    """The mask loss of a run: ``config["loss"]``, plus the teacher term when it distils."""
    base = LOSSES[config.get("loss") or "bce-dice"]
    if not config.get("teacher"):
        return base
    weight = float(config.get("distill_weight") or 0.5)

    def distill(y_true, y_pred):
        """The run's loss on the ground truth (channel 0) plus ``weight`` x BCE towards the
        teacher's probability (channel 1): the teacher's soft edges and its confidence carry more
        than 0/1 masks."""
        import keras
        from keras import ops

        soft = ops.cast(y_true[..., 1:], y_pred.dtype)
        return base(y_true[..., :1], y_pred) + weight * ops.mean(
            keras.losses.binary_crossentropy(soft, y_pred)
        )

    return distill
