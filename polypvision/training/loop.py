"""The epoch loop of ``train``: Keras ``fit`` over each phase, with callbacks.

A run's epochs fall into phases (:func:`epoch_phase`): a warm-up with the pretrained encoder
frozen, then fine-tuning of the whole network. A phase change needs a recompile (the trainable
set changes, and the optimizer starts afresh), which cannot happen inside ``fit``; so
:func:`fit_epochs` calls ``model.fit`` once per phase, from the phase's first epoch to its last
(``initial_epoch``/``epochs``, so callbacks see the run's own epoch numbers), and everything that
happens per batch or per epoch is a callback:

- the learning rate of each epoch: Keras's own ``LearningRateScheduler`` with :func:`epoch_lr`;
- the weight average and the step progress bar (:mod:`polypvision.training.callbacks`);
- the per-epoch validation, patience, history row and commit.

A callback that sets ``model.stop_training`` ends the run, not only the phase.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from polypvision.training.losses import loss_of

if TYPE_CHECKING:
    import keras

AUX_LOSS_WEIGHT = 0.4  # each deep-supervision side output, against 1 for the main one
# the frame-level presence output's BCE, against 1 for the mask: half, so the mask (what the
# segmentation figures and the drawn outline rest on) keeps the larger say in shared weights
PRESENCE_LOSS_WEIGHT = 0.5


# ------------------------------------------------------------------ the schedule


def _cosine(lr: float, i: int, n: int, floor: float = 0.02) -> float:
    if n <= 1:
        return lr
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * i / (n - 1))))


def epoch_phase(config: dict[str, Any], epoch: int) -> str:
    """``warmup`` (pretrained encoder frozen), then ``finetune``;
    ``train`` throughout without a warm-up."""
    warm = int(config.get("warmup_epochs") or 0)
    return "warmup" if epoch < warm else ("finetune" if warm else "train")


def epoch_lr(config: dict[str, Any], epoch: int, epochs: int) -> float:
    """The learning rate of ``epoch``: constant in the warm-up,
    then cosine decay to the end of ``epochs``."""
    warm = int(config.get("warmup_epochs") or 0)
    phase = epoch_phase(config, epoch)
    base_lr = float(config["finetune_lr"] if phase == "finetune" else config["lr"])
    if phase == "warmup":
        return base_lr
    i, n = (epoch - warm, epochs - warm) if phase == "finetune" else (epoch, epochs)
    return _cosine(base_lr, i, n)


def phase_spans(config: dict[str, Any], start: int, stop: int) -> list[tuple[str, int, int]]:
    """The epochs ``start``..``stop - 1`` as (phase, first, end) runs of one phase each."""
    spans: list[tuple[str, int, int]] = []
    for epoch in range(start, stop):
        phase = epoch_phase(config, epoch)
        if spans and spans[-1][0] == phase:
            spans[-1] = (phase, spans[-1][1], epoch + 1)
        else:
            spans.append((phase, epoch, epoch + 1))
    return spans


def compile_for_phase(model: keras.Model, config: dict[str, Any], phase: str) -> None:
    """(Un)freeze the encoder for ``phase`` and compile with a fresh Adam (the run's loss, one
    per output with the side outputs of deep supervision weighted ``AUX_LOSS_WEIGHT``)."""
    import keras

    from polypvision.training import encoders

    if encoders.get(config["arch"]).pretrained:
        encoders.set_encoder_trainable(model, phase != "warmup")
    n_out = len(model.outputs)
    loss = loss_of(config)
    presence = bool(config.get("presence"))
    n_masks = n_out - 1 if presence else n_out
    losses = [loss] * n_masks + (["binary_crossentropy"] if presence else [])
    weights = (
        [1.0] + [AUX_LOSS_WEIGHT] * (n_masks - 1) + ([PRESENCE_LOSS_WEIGHT] if presence else [])
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=float(config["lr"])),
        loss=losses if n_out > 1 else loss,
        loss_weights=weights if n_out > 1 else None,
    )


def fit_epochs(
    model: keras.Model,
    data: Any,
    config: dict[str, Any],
    *,
    start: int,
    stop: int,
    steps: int,
    callbacks: Sequence[keras.callbacks.Callback],
) -> int:
    """Train epochs ``start``..``stop - 1`` of a run whose schedule ends at ``stop``. Returns the
    number of epochs done (fewer when a callback stopped the run)."""
    import keras

    schedule = keras.callbacks.LearningRateScheduler(
        lambda epoch, lr: epoch_lr(config, epoch, stop)
    )
    done = start
    for phase, first, end in phase_spans(config, start, stop):
        compile_for_phase(model, config, phase)
        history = model.fit(
            data,
            initial_epoch=first,
            epochs=end,
            steps_per_epoch=steps,
            verbose=0,
            callbacks=[schedule, *callbacks],
            shuffle=False,
        )
        done = first + len(history.epoch)
        if model.stop_training:
            break
    return done
