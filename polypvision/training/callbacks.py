"""Keras callbacks of the training loop (:mod:`polypvision.training.loop`).

:class:`WeightEMA` (the weight average) and :class:`StepProgress` (the progress bar) run on
every batch. An epoch ends with four callbacks, run in this order: :class:`ValidateEpoch` (the
epoch's weights and their EMA written and validated, the better kept), :class:`Patience` (epochs
without a gain), :class:`HistoryCSV` (the history row) and :class:`EpochCommit` (``state.json``,
the commit).

Why not Keras's own: ``EarlyStopping`` resets its counter and best in ``on_train_begin``, that is
at every phase switch and every resume, and its ``start_from_epoch`` skips counting during the
warm-up instead of counting without stopping; ``CSVLogger`` numbers epochs from 0, orders its
columns alphabetically (an older run's header would no longer match on resume) and cannot drop
the rows of uncommitted epochs; ``BackupAndRestore`` keeps its own checkpoint and deletes it at the
end, while a run here is resumed from ``state.json`` (the epoch files kept for SWA, the EMA, the
best weights, the patience counter) at any epoch, even at another input size; ``ModelCheckpoint``
writes in place (a kill mid-write leaves a truncated file under the name) and cannot save the EMA.
The learning rate is Keras's ``LearningRateScheduler``.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from polypvision.progress import Progress


class WeightEMA(keras.callbacks.Callback):
    """An exponential moving average of the weights, updated after every training batch.

    ``ema`` goes on from a resumed average (None: it starts from the first batch's weights).
    """

    def __init__(self, decay: float, ema: list[np.ndarray] | None = None) -> None:
        super().__init__()
        self.decay = float(decay)
        self.ema = ema

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        w = [v.value.numpy() for v in self.model.weights]
        if self.ema is None or len(self.ema) != len(w):
            self.ema = [np.array(x, copy=True) for x in w]
            return
        d = self.decay
        for e, x in zip(self.ema, w, strict=True):
            e *= d
            e += (1.0 - d) * x


class StepProgress(keras.callbacks.Callback):
    """``[run] epoch E/N`` with the steps done, the epoch's running loss, speed and time left."""

    def __init__(self, name: str, epochs: int, steps: int, every_s: float = 30.0) -> None:
        super().__init__()
        self.name, self.epochs, self.steps, self.every_s = name, epochs, steps, every_s
        self.bar: Progress | None = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.bar = Progress(
            self.steps,
            desc=f"[{self.name}] epoch {epoch + 1}/{self.epochs}",
            unit="step",
            every_s=self.every_s,
        )

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.bar is not None:
            self.bar.update_to(
                batch + 1, loss=f"{float((logs or {}).get('loss', float('nan'))):.4f}"
            )

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ------------------------------------------------------------------ train's epoch end


@dataclass
class EpochRecord:
    """One validated epoch, as the callbacks after :class:`ValidateEpoch` see it (epochs from 1)."""

    epoch: int
    phase: str
    lr: float
    loss: float
    scores: dict[float, tuple[float, float]]  # of the kept weights (EMA or raw), per threshold
    ema_dice: float
    raw_dice: float
    use_ema: bool
    detail: dict[str, Any]
    files: dict[str, str]  # "last" and "last_ema": the epoch's weight files, relative to the run
    seconds: float
    improved: bool = False
    bad_epochs: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dice(self) -> float:
        return self.scores[0.5][0]

    @property
    def iou(self) -> float:
        return self.scores[0.5][1]


class ValidateEpoch(keras.callbacks.Callback):
    """Write the epoch's weights and their EMA (atomically, kept for SWA), validate both as the app
    measures, and keep the better as the epoch's score; the run's best so far goes into ``state``.

    Averaged weights do not match averaged BatchNorm statistics in a network that still changes
    fast (a UNet from scratch), so the EMA does not always win: whichever scores better this epoch
    is kept. Training goes on from the raw weights either way. Logs ``val_dice`` (and ``val_iou``,
    ``val_dice_ema``, ``val_dice_raw``) for the callbacks after it.
    """

    def __init__(
        self,
        out: Path,
        state: dict[str, Any],
        *,
        ema: WeightEMA,
        score: Callable[[], dict[float, tuple[float, float]]],
        detail: Callable[[], dict[str, Any]],
        phase_of: Callable[[int], str],
        lr_of: Callable[[int], float],
        save: Callable[[keras.Model, Path], str],
    ) -> None:
        super().__init__()
        self.out, self.state, self.ema = out, state, ema
        self.score, self.detail, self.phase_of, self.lr_of, self.save = (
            score,
            detail,
            phase_of,
            lr_of,
            save,
        )
        self.best = float(state.get("best_dice", -1.0))
        self.record: EpochRecord | None = None
        self._t0 = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._t0 = time.time()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        model, n = self.model, epoch + 1
        raw_scores = self.score()
        raw_detail = self.detail()
        files = {"last": self.save(model, self.out / "ckpt" / f"e{n:03d}.weights.h5")}
        raw_w = model.get_weights()
        model.set_weights(self.ema.ema if self.ema.ema is not None else raw_w)
        ema_scores = self.score()
        ema_detail = self.detail()
        files["last_ema"] = self.save(model, self.out / "ckpt" / f"e{n:03d}.ema.weights.h5")
        model.set_weights(raw_w)
        use_ema = ema_scores[0.5][0] >= raw_scores[0.5][0]
        rec = EpochRecord(
            n,
            self.phase_of(epoch),
            self.lr_of(epoch),
            float(logs.get("loss", float("nan"))),
            ema_scores if use_ema else raw_scores,
            ema_scores[0.5][0],
            raw_scores[0.5][0],
            use_ema,
            ema_detail if use_ema else raw_detail,
            files,
            time.time() - self._t0,
        )
        rec.improved = rec.dice > self.best
        if rec.improved:
            self.best = rec.dice
            self.state.update(
                best_file=files["last_ema" if use_ema else "last"],
                best_epoch=n,
                best_weights="ema" if use_ema else "raw",
                best_scores={str(t): v for t, v in rec.scores.items()},
                best_detail=rec.detail,
            )
        self.record = rec
        logs.update(
            val_dice=rec.dice, val_iou=rec.iou, val_dice_ema=rec.ema_dice, val_dice_raw=rec.raw_dice
        )


class Patience(keras.callbacks.Callback):
    """Stop after ``patience`` epochs without a gain in ``val_dice`` (as EarlyStopping does), with
    the counter and the best value restored on resume and never stopping in the warm-up (epochs
    there count; ``may_stop(epoch)`` is False)."""

    def __init__(
        self,
        patience: int,
        *,
        best: float,
        bad_epochs: int,
        may_stop: Callable[[int], bool],
        validated: ValidateEpoch,
        monitor: str = "val_dice",
    ) -> None:
        super().__init__()
        self.patience, self.best, self.bad_epochs = patience, best, bad_epochs
        self.may_stop, self.validated, self.monitor = may_stop, validated, monitor
        self.stopped = False

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = float((logs or {})[self.monitor])
        if value > self.best:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if self.validated.record is not None:
            self.validated.record.bad_epochs = self.bad_epochs
        if self.bad_epochs >= self.patience and self.may_stop(epoch):
            self.stopped = True
            self.model.stop_training = True


class HistoryCSV(keras.callbacks.Callback):
    """``history.csv``: a header once, then one row per epoch, appended before the epoch is
    committed (rows of epochs that never were are dropped on resume:
    :func:`polypvision.training.runs.truncate_history`)."""

    def __init__(self, path: Path, fields: Sequence[str], row: Callable[[], list[Any]]) -> None:
        super().__init__()
        self.path, self.fields, self.row = path, list(fields), row

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if not self.path.is_file():
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(self.fields)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow(self.row())


class EpochCommit(keras.callbacks.Callback):
    """End the epoch: ``state.json`` (written atomically) is the commit
    (``commit``), then one line."""

    def __init__(
        self,
        state: dict[str, Any],
        validated: ValidateEpoch,
        commit: Callable[[dict[str, Any]], None],
        say: Callable[[EpochRecord, dict[str, Any]], None],
    ) -> None:
        super().__init__()
        self.state, self.validated, self.commit, self.say = state, validated, commit, say

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        rec = self.validated.record
        assert rec is not None
        st = self.state
        wall = float(st.get("wall_s", 0.0)) + rec.seconds
        st.update(
            epoch=rec.epoch,
            best_dice=self.validated.best,
            wall_s=wall,
            bad_epochs=rec.bad_epochs,
            phase=rec.phase,
            **rec.files,
        )
        st.setdefault("epoch_files", []).append(
            {
                "epoch": rec.epoch,
                **rec.files,
                "val_dice_ema": rec.ema_dice,
                "val_dice_raw": rec.raw_dice,
            }
        )
        self.commit(st)
        self.say(rec, st)
