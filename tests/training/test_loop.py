"""The shared epoch loop: one ``fit`` per phase with a recompile between, the per-epoch learning
rate through Keras's scheduler, a stop that ends the run, and the patience callback."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [
    pytest.mark.train,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]
pytest.importorskip("tensorflow")

CONFIG = {
    "arch": "mobilenetv2",
    "warmup_epochs": 2,
    "lr": 1e-3,
    "finetune_lr": 2e-4,
    "loss": "bce-dice",
    "teacher": None,
}


def _model_and_data():
    import tensorflow as tf

    from polypvision.training import encoders

    model = encoders.get("mobilenetv2").build(input_size=32, pretrained=False)
    rng = np.random.default_rng(0)
    x = rng.random((4, 32, 32, 3)).astype(np.float32)
    y = (rng.random((4, 32, 32, 1)) > 0.5).astype(np.float32)
    return model, tf.data.Dataset.from_tensor_slices((x, y)).batch(2).repeat()


def _recorder():
    import keras

    class Seen(keras.callbacks.Callback):
        def __init__(self, stop_at=None):
            super().__init__()
            self.rows, self.stop_at = [], stop_at

        def on_epoch_begin(self, epoch, logs=None):
            self.rows.append(
                (
                    epoch,
                    float(self.model.optimizer.learning_rate),
                    len(self.model.trainable_weights),
                    id(self.model.optimizer),
                )
            )

        def on_epoch_end(self, epoch, logs=None):
            if epoch == self.stop_at:
                self.model.stop_training = True

    return Seen


def test_phases_recompile_and_each_epoch_gets_its_learning_rate():
    from polypvision.training.loop import epoch_lr, fit_epochs, phase_spans

    assert phase_spans(CONFIG, 0, 5) == [("warmup", 0, 2), ("finetune", 2, 5)]
    assert phase_spans(CONFIG, 3, 5) == [("finetune", 3, 5)]  # a resume past the warm-up
    assert phase_spans({**CONFIG, "warmup_epochs": 0}, 0, 2) == [("train", 0, 2)]
    model, data = _model_and_data()
    seen = _recorder()()
    assert fit_epochs(model, data, CONFIG, start=0, stop=5, steps=1, callbacks=[seen]) == 5
    epochs, lrs, trainable, optimizers = zip(*seen.rows, strict=True)
    assert epochs == (0, 1, 2, 3, 4)
    assert lrs == pytest.approx([epoch_lr(CONFIG, e, 5) for e in range(5)], rel=1e-6)
    assert (
        lrs[2] == pytest.approx(2e-4) and lrs[4] < lrs[3] < lrs[2]
    )  # fine-tuning decays from its own rate
    assert (
        trainable[0] == trainable[1] < trainable[2] == trainable[3] == trainable[4]
    )  # the encoder was frozen
    assert (
        optimizers[0] == optimizers[1] != optimizers[2] == optimizers[4]
    )  # a fresh Adam at the switch


def test_a_stop_ends_the_run_not_only_the_phase():
    from polypvision.training.loop import fit_epochs

    model, data = _model_and_data()
    seen = _recorder()(stop_at=0)
    assert fit_epochs(model, data, CONFIG, start=0, stop=5, steps=1, callbacks=[seen]) == 1
    assert [r[0] for r in seen.rows] == [0]


def test_patience_counts_through_the_warm_up_and_resumes_its_counter():
    from types import SimpleNamespace

    from polypvision.training.callbacks import Patience

    validated = SimpleNamespace(record=None)
    p = Patience(
        2, best=0.5, bad_epochs=1, may_stop=lambda e: e >= 2, validated=validated
    )  # resumed: 1 bad
    p.set_model(SimpleNamespace(stop_training=False))
    p.on_epoch_end(0, {"val_dice": 0.4})
    assert p.bad_epochs == 2 and not p.stopped  # the warm-up never stops
    p.on_epoch_end(1, {"val_dice": 0.6})
    assert p.bad_epochs == 0 and p.best == 0.6
    p.on_epoch_end(2, {"val_dice": 0.6})  # equal is no gain
    p.on_epoch_end(3, {"val_dice": 0.59})
    assert p.bad_epochs == 2 and p.stopped and p.model.stop_training
