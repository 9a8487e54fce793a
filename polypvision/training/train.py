"""``polypvision train``: fit a model on a leak-free split, resumable at any epoch.

Training may run for hours and be cut off at any time, so every epoch ends with a
checkpoint (``last.weights.h5``), the state (``state.json``) and a row of ``history.csv``;
``--resume`` continues from there, even at another input size (the networks are fully
convolutional: train small first, then fine-tune at the export size). The epochs run in
Keras's ``fit`` with callbacks (:mod:`polypvision.training.loop`, shared with ``refit``;
:mod:`polypvision.training.callbacks`).

Validation Dice is measured like the app measures it: the full frame resized to the model's size
with OpenCV, the probability resized back to the frame, thresholded, and Dice taken per image at the
frame's size. It is computed both on the current weights and on an exponential moving average of
them (validation Dice of a single set of weights jumps between epochs on these few sequences; the
average is steadier), and the better of the two is the epoch's score; the best such weights are kept
(``state.json`` names the file; ``best.weights.h5`` is a copy) and early stopping watches them. The
decision threshold is then chosen on the validation split, never on test.

Pretrained encoders are frozen for ``--warmup-epochs`` (the random decoder would
otherwise wreck them with large gradients), then the whole network is fine-tuned at
``--finetune-lr``. Encoder BatchNorms stay in inference mode throughout: batches of 8
are too small to re-estimate ImageNet statistics.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from polypvision import data as pdata
from polypvision.fileio import atomic_open, atomic_path, copy_file, write_text
from polypvision.training import trainsets
from polypvision.training.loop import AUX_LOSS_WEIGHT, epoch_lr, epoch_phase

__all__ = [
    "AUX_LOSS_WEIGHT",
    "HISTORY_FIELDS",
    "build_model",
    "choose_threshold",
    "commit_epoch",
    "epoch_lr",
    "epoch_phase",
    "loss_of",
    "run",
    "save_state",
    "save_weights_atomic",
    "truncate_history",
]

THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.2, 0.81, 0.05))
HISTORY_FIELDS = [
    "epoch",
    "phase",
    "lr",
    "loss",
    "val_dice",
    "val_iou",
    "val_dice_ema",
    "val_dice_raw",
    "best_dice",
    "epoch_s",
    "wall_s",
    "val_per_dataset",
    "val_negative_flagged",
]


def choose_threshold(scores: dict[float, tuple[float, float]], tolerance: float = 0.01) -> float:
    """The threshold closest to 0.5 whose validation Dice is within ``tolerance`` of the best.

    Every CVC-ClinicDB frame holds a polyp, so validation cannot see false alarms on
    polyp-free frames, which the app meets all the time; the sweep's optimum drifts low
    for that reason. Where the curve is flat, 0.5 is kept.
    """
    best = max(v[0] for v in scores.values())
    ok = [t for t, v in scores.items() if v[0] >= best - tolerance]
    return float(min(ok, key=lambda t: (abs(t - 0.5), -scores[t][0])))


def configure_threads(threads: int | None) -> None:
    """Pin TensorFlow's thread pools (call before TensorFlow runs anything)."""
    import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
        except RuntimeError:
            pass  # TensorFlow already started in this process (tests, notebooks): keep its pools


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


# ------------------------------------------------------------------ data in memory


def preprocess_frames(frames_bgr: list[np.ndarray], size: int, mean, std) -> np.ndarray:
    """The app's preprocessing: resize (bilinear), BGR->RGB, /255, (x-mean)/std, NHWC."""
    import cv2

    out = np.empty((len(frames_bgr), size, size, 3), np.float32)
    m, s = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    for i, f in enumerate(frames_bgr):
        r = (
            cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR)[..., ::-1].astype(
                np.float32
            )
            / 255.0
        )
        out[i] = (r - m) / s
    return out


def dice_iou(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """Dice and IoU of one binary prediction, as ``polypvision evaluate`` counts them
    (one definition)."""
    from polypvision.evaluate import Counts

    m = Counts.of(pred, gt).metrics()
    return m["dice"], m["iou"]


class Validator:
    """Per-image Dice at frame size over a threshold sweep, as the app would see it."""

    def __init__(self, samples: list[pdata.Sample], size: int, mean, std, batch: int = 8) -> None:
        pairs = [pdata.load_pair(s) for s in samples]
        self.frames = [p[0] for p in pairs]
        self.masks = [p[1] for p in pairs]
        self.x = preprocess_frames(self.frames, size, mean, std)
        self.batch = batch

    def probabilities(self, model) -> list[np.ndarray]:
        import cv2

        probs = []
        for i in range(0, len(self.x), self.batch):
            out = np.asarray(model(self.x[i : i + self.batch], training=False))[..., 0]
            for j, p in enumerate(out):
                h, w = self.masks[i + j].shape
                probs.append(cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR))
        return probs

    def score(self, model) -> dict[float, tuple[float, float]]:
        probs = self.probabilities(model)
        res = {}
        for t in THRESHOLDS:
            d, j = zip(
                *(dice_iou(p > t, m) for p, m in zip(probs, self.masks, strict=True)), strict=True
            )
            res[t] = (float(np.mean(d)), float(np.mean(j)))
        return res


class MultiValidator:
    """One Validator per dataset of the run. The epoch's score (what picks the epoch, the kept
    weights and the threshold) is the mean over the polyp datasets of their validation mean Dice,
    each dataset weighing the same (one centre must not win by having more frames). Polyp-free
    datasets are measured apart: the share of their frames with any pixel over the threshold
    (the raw model, before the app's smoothing and gating) is logged every epoch."""

    def __init__(
        self, groups: list[tuple[str, list[pdata.Sample], bool]], size: int, mean, std
    ) -> None:
        self.polyp = {
            name: Validator(s, size, mean, std) for name, s, neg in groups if not neg and s
        }
        self.negative = {
            name: Validator(s, size, mean, std) for name, s, neg in groups if neg and s
        }

    def score(self, model) -> dict[float, tuple[float, float]]:
        """{threshold: (mean Dice, mean IoU)} over the polyp datasets; details in ``last``."""
        per = {name: v.score(model) for name, v in self.polyp.items()}
        self.last: dict[str, dict] = {"per_dataset": {n: r[0.5][0] for n, r in per.items()}}
        neg_probs = [p for v in self.negative.values() for p in v.probabilities(model)]
        self.last["negative_frames_flagged"] = (
            float(np.mean([float(p.max()) > 0.5 for p in neg_probs])) if neg_probs else None
        )
        return {
            t: (
                float(np.mean([r[t][0] for r in per.values()])),
                float(np.mean([r[t][1] for r in per.values()])),
            )
            for t in THRESHOLDS
        }


# ------------------------------------------------------------------ model pieces


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


def build_model(config: dict[str, Any], input_size: int | None = None):
    from polypvision.training import encoders

    arch = encoders.get(config["arch"])
    return arch.build(
        input_size=input_size or config["input_size"],
        base_filters=config.get("base_filters") or 16,
        pretrained=arch.pretrained,
        deep_supervision=bool(config.get("deep_supervision")),
        presence=bool(config.get("presence")),
    )


# ------------------------------------------------------------------ the loop


def _check_sizes(size: int, crop: int, multiple: int) -> int | None:
    """The training sizes, checked before any work: a side the network's strides cannot halve
    evenly would fail deep inside Keras. Returns the crop size, or None for whole frames (0)."""
    from polypvision.errors import UserError

    if size <= 0 or size % multiple:
        raise UserError(
            f"--input-size {size}: this architecture needs a positive multiple of {multiple} "
            f"(e.g. {max(multiple, size // multiple * multiple)})"
        )
    if crop == 0:
        return None
    if crop < 0 or crop % multiple or crop >= size:
        raise UserError(
            f"--crop-size {crop}: must be a multiple of {multiple} below --input-size {size} "
            f"(e.g. {max(multiple, size // 2 // multiple * multiple)}), or 0 for whole frames"
        )
    return crop


def _per_dataset(detail: dict) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in (detail.get("per_dataset") or {}).items())


def _fmt_share(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


# the last epochs' weights stay on disk, for weight averaging (SWA) after the run
KEEP_EPOCH_FILES = 8


def save_weights_atomic(model, path: Path) -> str:
    """Write ``model``'s weights to ``path`` under a temporary name, then rename: a kill mid-write
    never leaves a truncated file under the name a state file points to. Returns the path relative
    to the run folder (``ckpt/...``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, ".weights.h5", lock=False) as tmp:  # HDF5 locks the file itself
        model.save_weights(tmp)
    return f"{path.parent.name}/{path.name}"


def commit_epoch(out: Path, state: dict[str, Any]) -> None:
    """End an epoch: the state file (written atomically) is the commit; after it, the conventional
    ``last.weights.h5`` / ``best.weights.h5`` copies are refreshed and epoch files nothing needs are
    pruned.

    Killed at any point, the run resumes from the last committed epoch: every file the state names
    is complete, history rows of uncommitted epochs are dropped on resume, and an uncommitted epoch
    is trained again from the committed weights.
    """
    files = state.get("epoch_files", [])
    keep = {
        state.get("last"),
        state.get("last_ema"),
        state.get("best_file"),
        (state.get("swa") or {}).get("file"),
    }
    for rec in files[-KEEP_EPOCH_FILES:]:
        keep.update((rec.get("last"), rec.get("last_ema")))
    state["epoch_files"] = [r for r in files if r.get("last") in keep or r.get("last_ema") in keep]
    save_state(out / "state.json", state)
    for name, key in (("last.weights.h5", "last"), ("best.weights.h5", "best_file")):
        if state.get(key):
            copy_file(out / state[key], out / name)
    for f in (out / "ckpt").glob("*.weights.h5"):
        if f"ckpt/{f.name}" not in keep:
            f.unlink(missing_ok=True)


def truncate_history(path: Path, epochs_done: int) -> None:
    """Drop history rows of epochs after the last committed one
    (a run killed between the row and the commit)."""
    if not path.is_file():
        return
    rows = list(csv.reader(path.read_text().splitlines()))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= epochs_done]
    if len(kept) != len(rows):
        with atomic_open(path, "w", newline="") as f:
            csv.writer(f).writerows(kept)


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write a run's state.json atomically (a run cut off mid-write must still resume)."""
    write_text(path, json.dumps(state, indent=1))


def run(args) -> int:
    """Train per ``args`` (see ``cli_train``); returns an exit status."""
    if getattr(args, "refit_of", None):
        from polypvision.training.refit import refit

        return refit(args)
    if getattr(args, "swa_of", None):
        from polypvision.training.swa import swa

        return swa(args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from polypvision.errors import UserError
    from polypvision.training import encoders

    if not args.out:
        raise UserError("train needs --out, the run folder for checkpoints, state and history")
    configure_threads(args.threads)
    # Keras converts per-batch logs with np.array(copy=False) semantics that NumPy 2 flags.
    warnings.filterwarnings(
        "ignore", message="__array__ implementation", category=DeprecationWarning
    )
    out = Path(args.out)
    state_path = out / "state.json"
    state: dict[str, Any] = {}
    if args.resume:
        if not state_path.is_file():
            raise UserError(
                f"--resume: {state_path} does not exist; start the run without --resume"
            )
        state = json.loads(state_path.read_text())
        if state.get("refit"):
            raise UserError(
                f"--resume: {out} is a refit (train --refit-of), which cannot resume; "
                "rerun the refit with --force"
            )
        config = dict(state["config"])
        # Settings that may change on resume (e.g. train small, then fine-tune at 256).
        for key in (
            "epochs",
            "input_size",
            "crop_size",
            "batch_size",
            "lr",
            "finetune_lr",
            "patience",
            "threads",
        ):
            val = getattr(args, key, None)
            if val is not None:
                config[key] = val
    else:
        if state_path.is_file() and not args.force:
            raise UserError(
                f"{out} already holds a run; pass --resume to continue it or --force to start over"
            )
        if not args.data:
            raise UserError("train needs at least one --data folder (images/ and masks/)")
        arch = encoders.get(args.arch)
        if getattr(args, "deep_supervision", False) and not arch.pretrained:
            raise UserError(
                "--deep-supervision is for the pretrained-encoder UNets (mobilenetv2, "
                "efficientnet-lite0); the research UNet is kept exactly as published"
            )
        config = {
            "arch": args.arch,
            "base_filters": args.base_filters if args.arch == "unet" else None,
            "input_size": args.input_size or 256,
            "crop_size": args.crop_size,
            "epochs": args.epochs or 40,
            "warmup_epochs": args.warmup_epochs if arch.pretrained else 0,
            "batch_size": args.batch_size or 8,
            "lr": args.lr or 1e-3,
            "finetune_lr": args.finetune_lr or 2e-4,
            "patience": args.patience or 15,
            "ema_decay": args.ema_decay,
            "seed": args.seed,
            "threads": args.threads,
            "data": [
                d.to_dict() for d in pdata.specs_from(args.data, getattr(args, "negatives", None))
            ],
            "negative_share": float(getattr(args, "negative_share", None) or 0.15),
            "loss": getattr(args, "loss", None) or "bce-dice",
            "deep_supervision": bool(getattr(args, "deep_supervision", False)),
            "background_crops": bool(getattr(args, "background_crops", False)),
            "presence": bool(getattr(args, "presence_head", False)),
            "hard_negatives": str(Path(args.hard_negatives).resolve())
            if getattr(args, "hard_negatives", None)
            else None,
            "teacher": str(Path(args.teacher).resolve())
            if getattr(args, "teacher", None)
            else None,
            "distill_weight": float(getattr(args, "distill_weight", None) or 0.5),
            "mean": list(arch.mean),
            "std": list(arch.std),
        }
    crop = _check_sizes(
        int(config["input_size"]),
        int(config.get("crop_size") or 0),
        encoders.get(config["arch"]).size_multiple,
    )
    out.mkdir(parents=True, exist_ok=True)

    specs = (
        pdata.specs_from(args.data, getattr(args, "negatives", None))
        if args.data
        else pdata.specs_of_config(config)
    )
    config["data"] = [d.to_dict() for d in specs]
    split_file = args.split_file or (config.get("split_file") if args.resume else None)
    leaky_wanted = bool(getattr(args, "leaky_split", False) or config.get("per_image_split"))
    config["per_image_split"] = leaky_wanted
    sets = pdata.load_splits(specs, split_file, seed=config["seed"], per_image=leaky_wanted)
    paths = {str(d.split.path) for d in sets}
    config["split_file"] = (
        paths.pop() if len(paths) == 1 else {d.name: str(d.split.path) for d in sets}
    )
    config["split_leaky"] = any(d.split.leaky for d in sets)
    cmd = (
        "polypvision train " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if len(sys.argv) > 1
        else "polypvision train"
    )
    state.setdefault("commands", []).append(cmd)
    state["config"] = config

    size, batch = int(config["input_size"]), int(config["batch_size"])
    mean, std = tuple(config["mean"]), tuple(config["std"])
    t_load = time.time()
    groups = []
    for d in sets:
        tr, va = d.samples("train"), d.samples("val")
        print(
            f"[{out.name}] data {d.dataset.root}: train {len(tr)} / val {len(va)} "
            f"{'polyp-free ' if d.negative else ''}frames ({d.split.method or 'split'}"
            f"{'; LEAKY' if d.split.leaky else ''}; split {d.split.path})",
            flush=True,
        )
        if tr:
            groups.append((*trainsets.training_arrays(tr, config), d.negative))
    if config.get("background_crops"):
        n_before = len(groups)
        groups = trainsets.with_background_crops(groups, int(config["seed"]))
        counts = [len(g[0]) for g in groups[n_before:]]
        print(
            f"[{out.name}] background crops: {sum(counts)} polyp-free squares cut from the polyp "
            f"frames ({', '.join(map(str, counts)) or 'no frame had room for one'})",
            flush=True,
        )
    if config.get("hard_negatives"):
        groups, hard = trainsets.with_hard_negatives(
            groups, config["hard_negatives"], int(config["seed"])
        )
        state["hard_negatives"] = hard
        print(
            f"[{out.name}] hard negatives from {Path(config['hard_negatives']).name}: "
            f"{hard['frames_flagged']} of {hard['frames_checked']} polyp-free training frames and "
            f"{hard['squares_flagged']} of {hard['squares_checked']} polyp-free squares of the "
            "polyp frames flagged",
            flush=True,
        )
    validator = MultiValidator(
        [(d.name, d.samples("val"), d.negative) for d in sets], size, mean, std
    )
    print(
        f"[{out.name}] frames decoded (or read from the cache) in "
        f"{fmt_duration(time.time() - t_load)}",
        flush=True,
    )
    share = float(config.get("negative_share") or 0.15)
    n_pos = sum(len(g[0]) for g in groups if not g[2])
    has_neg = any(g[2] for g in groups)
    # One epoch draws about every polyp frame once, plus the polyp-free share on top.
    steps = max(
        1,
        round(
            (n_pos / (1.0 - share) if has_neg and n_pos else sum(len(g[0]) for g in groups)) / batch
        ),
    )
    start = int(state.get("epoch", 0))
    epochs = int(config["epochs"])
    keras.utils.set_random_seed(int(config["seed"]) + start)
    model = build_model(config, crop or size)
    ds = trainsets.make_mixed_dataset(
        groups,
        size,
        batch,
        mean,
        std,
        seed=int(config["seed"]) + start,
        crop=crop,
        negative_share=share,
        n_outputs=len(model.outputs),
        presence=bool(config.get("presence")),
    )
    # Patches train a copy built at the crop size; validation runs the same weights at full size.
    vmodel = build_model(config, size) if crop else model
    vmain = encoders.main_output(vmodel)

    def _score():
        if vmodel is not model:
            vmodel.set_weights(model.get_weights())
        return validator.score(vmain)

    ema: list | None = None
    if args.resume:
        last = out / str(state.get("last") or "last.weights.h5")
        if last.is_file():
            if state.get("last_ema") and (out / state["last_ema"]).is_file():
                model.load_weights(
                    out / state["last_ema"]
                )  # the weight average goes on where it stopped
                ema = [np.array(v.value.numpy(), copy=True) for v in model.weights]
            model.load_weights(last)
            print(f"[{out.name}] resumed at epoch {start} from {last}", flush=True)
        truncate_history(out / "history.csv", start)
    print(
        f"[{out.name}] {config['arch']} {model.count_params():,} parameters, input {size}x{size}"
        f"{f' (trained on {crop}x{crop} crops)' if crop else ''}, batch {batch}, "
        f"{steps} steps/epoch, epochs {start}..{epochs}",
        flush=True,
    )
    _fit(
        model,
        ds,
        config,
        out,
        state,
        start=start,
        epochs=epochs,
        steps=steps,
        ema=ema,
        score=_score,
        detail=lambda: validator.last,
    )

    # Threshold chosen on validation with the best weights.
    if (out / "best.weights.h5").is_file():
        scores = {float(k): v for k, v in state.get("best_scores", {}).items()}
        if scores:
            t_best = choose_threshold(scores)
            state["threshold"] = t_best
            state["val_dice_at_threshold"] = scores[t_best][0]
    state["finished"] = True
    save_state(state_path, state)
    print(
        f"[{out.name}] done: best val Dice {float(state.get('best_dice', -1.0)):.4f} at epoch "
        f"{state.get('best_epoch')}, threshold {state.get('threshold')}, wall "
        f"{fmt_duration(float(state.get('wall_s', 0.0)))}",
        flush=True,
    )
    return 0


def _fit(
    model,
    ds,
    config: dict[str, Any],
    out: Path,
    state: dict[str, Any],
    *,
    start: int,
    epochs: int,
    steps: int,
    ema: list | None,
    score,
    detail,
) -> None:
    """Epochs ``start``..``epochs - 1`` through the shared loop, each ending with validation,
    patience, the history row and the commit (:mod:`polypvision.training.callbacks`)."""
    from polypvision.training.callbacks import (
        EpochCommit,
        EpochRecord,
        HistoryCSV,
        Patience,
        StepProgress,
        ValidateEpoch,
        WeightEMA,
    )
    from polypvision.training.loop import fit_epochs

    averaged = WeightEMA(float(config["ema_decay"]), ema)
    validate = ValidateEpoch(
        out,
        state,
        ema=averaged,
        score=score,
        detail=detail,
        phase_of=lambda e: epoch_phase(config, e),
        lr_of=lambda e: epoch_lr(config, e, epochs),
        save=save_weights_atomic,
    )
    patience = Patience(
        int(config["patience"]),
        best=float(state.get("best_dice", -1.0)),
        bad_epochs=int(state.get("bad_epochs", 0)),
        validated=validate,
        may_stop=lambda e: epoch_phase(config, e) != "warmup",
    )

    def row() -> list[Any]:
        r = validate.record
        assert r is not None
        wall = float(state.get("wall_s", 0.0)) + r.seconds
        return [
            r.epoch,
            r.phase,
            f"{r.lr:.3g}",
            f"{r.loss:.4f}",
            f"{r.dice:.4f}",
            f"{r.iou:.4f}",
            f"{r.ema_dice:.4f}",
            f"{r.raw_dice:.4f}",
            f"{validate.best:.4f}",
            f"{r.seconds:.0f}",
            f"{wall:.0f}",
            _per_dataset(r.detail),
            _fmt_share(r.detail.get("negative_frames_flagged")),
        ]

    def say(r: EpochRecord, st: dict[str, Any]) -> None:
        left = (epochs - r.epoch) * r.seconds
        print(
            f"[{out.name}] epoch {r.epoch}/{epochs} {r.phase} lr {r.lr:.2g} loss {r.loss:.4f} "
            f"val Dice {r.dice:.4f} IoU {r.iou:.4f} (EMA {r.ema_dice:.4f}, raw {r.raw_dice:.4f}) "
            f"best {validate.best:.4f}{' *' if r.improved else ''} [{_per_dataset(r.detail)}; "
            f"polyp-free frames flagged {_fmt_share(r.detail.get('negative_frames_flagged'))}] "
            f"{fmt_duration(r.seconds)}/epoch ETA {fmt_duration(left)}",
            flush=True,
        )
        if patience.stopped:
            print(
                f"[{out.name}] early stop: no val Dice gain for {patience.bad_epochs} epochs",
                flush=True,
            )

    fit_epochs(
        model,
        ds,
        config,
        start=start,
        stop=epochs,
        schedule_epochs=epochs,
        steps=steps,
        callbacks=[
            averaged,
            StepProgress(out.name, epochs, steps),
            validate,
            patience,
            HistoryCSV(out / "history.csv", HISTORY_FIELDS, row),
            EpochCommit(state, validate, lambda st: commit_epoch(out, st), say),
        ],
    )
