"""``polypvision train``: fit a model on a leak-free split, resumable at any epoch.

Training here runs for hours on two CPU cores and may be cut off at any time, so every
epoch ends with a checkpoint (``last.weights.h5``), the state (``state.json``) and a row
of ``history.csv``; ``--resume`` continues from there, even at another input size (the
networks are fully convolutional: train small first, then fine-tune at 256).

Validation Dice is measured like the app measures it: the full frame resized to the
model's size with OpenCV, the probability resized back to the frame, thresholded, and
Dice taken per image at the frame's size. It is computed both on the current weights
and on an exponential moving average of them (validation Dice of a single set of
weights jumps by +-0.3 between epochs on these few sequences; the average is steadier),
and the better of the two is the epoch's score; the best such weights are kept as
``best.weights.h5`` and early stopping watches them. The decision threshold is then
chosen on the validation split, never on test.

Pretrained encoders are frozen for ``--warmup-epochs`` (the random decoder would
otherwise wreck them with large gradients), then the whole network is fine-tuned at
``--finetune-lr``. Encoder BatchNorms stay in inference mode throughout: batches of 8
are too small to re-estimate ImageNet statistics.
"""

from __future__ import annotations

import csv
import json
import math
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

THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.2, 0.81, 0.05))
HISTORY_FIELDS = ["epoch", "phase", "lr", "loss", "val_dice", "val_iou", "val_dice_ema", "val_dice_raw", "best_dice",
                  "epoch_s", "wall_s"]


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
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parents[2],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


# ------------------------------------------------------------------ data in memory


def load_train_arrays(samples: list[pdata.Sample]) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 images (N,H,W,3) and 0/1 masks (N,H,W,1), all at one size.

    Frames of differing sizes (Kvasir-SEG) are resized to a common square, as the app
    resizes any frame to the model's square input regardless of aspect.
    """
    import cv2

    pairs = [pdata.load_pair(s) for s in samples]
    shapes = {img.shape[:2] for img, _ in pairs}
    target = next(iter(shapes)) if len(shapes) == 1 else (384, 384)
    imgs = np.empty((len(pairs), *target, 3), np.uint8)
    masks = np.empty((len(pairs), *target, 1), np.uint8)
    for i, (img, m) in enumerate(pairs):
        if img.shape[:2] != target:
            img = cv2.resize(img, target[::-1], interpolation=cv2.INTER_AREA)
            m = cv2.resize(m.astype(np.uint8), target[::-1], interpolation=cv2.INTER_NEAREST).astype(bool)
        imgs[i] = img[..., ::-1]
        masks[i, ..., 0] = m
    return imgs, masks


def preprocess_frames(frames_bgr: list[np.ndarray], size: int, mean, std) -> np.ndarray:
    """The app's preprocessing: resize (bilinear), BGR->RGB, /255, (x-mean)/std, NHWC."""
    import cv2

    out = np.empty((len(frames_bgr), size, size, 3), np.float32)
    m, s = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    for i, f in enumerate(frames_bgr):
        r = cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR)[..., ::-1].astype(np.float32) / 255.0
        out[i] = (r - m) / s
    return out


def dice_iou(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    inter = float(np.logical_and(pred, gt).sum())
    ps, gs = float(pred.sum()), float(gt.sum())
    union = ps + gs - inter
    dice = 1.0 if ps + gs == 0 else 2 * inter / (ps + gs)
    iou = 1.0 if union == 0 else inter / union
    return dice, iou


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
            out = np.asarray(model(self.x[i:i + self.batch], training=False))[..., 0]
            for j, p in enumerate(out):
                h, w = self.masks[i + j].shape
                probs.append(cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR))
        return probs

    def score(self, model) -> dict[float, tuple[float, float]]:
        probs = self.probabilities(model)
        res = {}
        for t in THRESHOLDS:
            d, j = zip(*(dice_iou(p > t, m) for p, m in zip(probs, self.masks, strict=True)), strict=True)
            res[t] = (float(np.mean(d)), float(np.mean(j)))
        return res


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


def build_model(config: dict[str, Any], input_size: int | None = None):
    from polypvision.training import encoders

    arch = encoders.get(config["arch"])
    return arch.build(input_size=input_size or config["input_size"], base_filters=config.get("base_filters") or 16,
                      pretrained=arch.pretrained)


def make_dataset(imgs: np.ndarray, masks: np.ndarray, size: int, batch: int, mean, std, seed: int,
                 crop: int | None = None):
    """Endless shuffled, augmented batches; ``crop`` gives crop x crop patches at the zoom of ``size``."""
    import tensorflow as tf

    from polypvision.training.augment import augment, normalise

    ds = tf.data.Dataset.from_tensor_slices((imgs, masks))
    ds = ds.shuffle(len(imgs), seed=seed, reshuffle_each_iteration=True).repeat()

    out = int(crop or size)

    def _map(i, m):
        a, b = augment(i, m, out, view=out / size)
        return normalise(a, mean, std), b

    ds = ds.map(_map, num_parallel_calls=2, deterministic=False)
    return ds.batch(batch, drop_remainder=True).prefetch(2)


# ------------------------------------------------------------------ the loop


class _Progress:
    """Keras callback: a progress line with s/step and ETA every few steps, plus weight EMA."""

    def __init__(self, name: str, epoch: int, epochs: int, steps: int, ema_decay: float, ema: list | None):
        import keras

        class CB(keras.callbacks.Callback):
            pass

        self.cb = CB()
        self.name, self.epoch, self.epochs, self.steps = name, epoch, epochs, steps
        self.ema_decay, self.ema = ema_decay, ema
        self.t0 = time.time()
        self.losses: list[float] = []
        self.step_times: list[float] = []
        self.cb.on_train_batch_end = self.on_batch_end
        self.last = time.time()

    def on_batch_end(self, batch: int, logs=None) -> None:
        now = time.time()
        self.step_times.append(now - self.last)
        self.last = now
        self.losses.append(float((logs or {}).get("loss", float("nan"))))
        w = [v.value.numpy() for v in self.cb.model.weights]
        if self.ema is None or len(self.ema) != len(w):
            self.ema = [np.array(x, copy=True) for x in w]
        else:
            d = self.ema_decay
            for e, x in zip(self.ema, w, strict=True):
                e *= d
                e += (1.0 - d) * x
        if (batch + 1) % 10 == 0 or batch + 1 == self.steps:
            per = float(np.mean(self.step_times[1:] or self.step_times))
            left = (self.steps - batch - 1 + (self.epochs - self.epoch - 1) * self.steps) * per
            print(f"[{self.name}] epoch {self.epoch + 1}/{self.epochs} step {batch + 1}/{self.steps} "
                  f"loss {np.mean(self.losses):.4f} {per:.2f} s/step ETA {fmt_duration(left)}", flush=True)


def _check_sizes(size: int, crop: int, multiple: int) -> int | None:
    """The training sizes, checked before any work: a side the network's strides cannot halve
    evenly would fail deep inside Keras. Returns the crop size, or None for whole frames (0)."""
    from polypvision.errors import UserError

    if size <= 0 or size % multiple:
        raise UserError(f"--input-size {size}: this architecture needs a positive multiple of {multiple} "
                        f"(e.g. {max(multiple, size // multiple * multiple)})")
    if crop == 0:
        return None
    if crop < 0 or crop % multiple or crop >= size:
        raise UserError(f"--crop-size {crop}: must be a multiple of {multiple} below --input-size {size} "
                        f"(e.g. {max(multiple, size // 2 // multiple * multiple)}), or 0 for whole frames")
    return crop


def _cosine(lr: float, i: int, n: int, floor: float = 0.02) -> float:
    if n <= 1:
        return lr
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * i / (n - 1))))


def epoch_phase(config: dict[str, Any], epoch: int) -> str:
    """``warmup`` (pretrained encoder frozen), then ``finetune``; ``train`` throughout without a warm-up."""
    warm = int(config.get("warmup_epochs") or 0)
    return "warmup" if epoch < warm else ("finetune" if warm else "train")


def epoch_lr(config: dict[str, Any], epoch: int, epochs: int) -> float:
    """The learning rate of ``epoch``: constant in the warm-up, then cosine decay to the end of ``epochs``."""
    warm = int(config.get("warmup_epochs") or 0)
    phase = epoch_phase(config, epoch)
    base_lr = float(config["finetune_lr"] if phase == "finetune" else config["lr"])
    if phase == "warmup":
        return base_lr
    i, n = (epoch - warm, epochs - warm) if phase == "finetune" else (epoch, epochs)
    return _cosine(base_lr, i, n)


def start_epoch(model, config: dict[str, Any], epoch: int, epochs: int, phase_now: str | None) -> tuple[str, float]:
    """Set up ``model`` for ``epoch`` of ``epochs``: on a phase change, (un)freeze the encoder and
    recompile (a fresh Adam); then the epoch's learning rate. Returns (phase, learning rate).

    Shared by ``run`` and ``refit`` so that a refit replays exactly the schedule of its run.
    """
    import keras

    from polypvision.training import encoders

    phase = epoch_phase(config, epoch)
    if phase != phase_now:
        if encoders.get(config["arch"]).pretrained:
            encoders.set_encoder_trainable(model, phase != "warmup")
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=float(config["lr"])), loss=bce_dice_loss)
    lr = epoch_lr(config, epoch, epochs)
    model.optimizer.learning_rate.assign(lr)
    return phase, lr


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write a run's state.json atomically (a run cut off mid-write must still resume)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(path)


def run(args) -> int:
    """Train per ``args`` (see ``cli_train``); returns an exit status."""
    if getattr(args, "refit_of", None):
        from polypvision.training.refit import refit

        return refit(args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from polypvision.errors import UserError
    from polypvision.training import encoders

    configure_threads(args.threads)
    # Keras converts per-batch logs with np.array(copy=False) semantics that NumPy 2 flags.
    warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
    out = Path(args.out)
    state_path = out / "state.json"
    state: dict[str, Any] = {}
    if args.resume:
        if not state_path.is_file():
            raise UserError(f"--resume: {state_path} does not exist; start the run without --resume")
        state = json.loads(state_path.read_text())
        if state.get("refit"):
            raise UserError(f"--resume: {out} is a refit (train --refit-of), which cannot resume; "
                            "rerun the refit with --force")
        config = dict(state["config"])
        # Settings that may change on resume (e.g. train small, then fine-tune at 256).
        for key in ("epochs", "input_size", "crop_size", "batch_size", "lr", "finetune_lr", "patience", "threads"):
            val = getattr(args, key, None)
            if val is not None:
                config[key] = val
    else:
        if state_path.is_file() and not args.force:
            raise UserError(f"{out} already holds a run; pass --resume to continue it or --force to start over")
        arch = encoders.get(args.arch)
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
            "data": str(Path(args.data).resolve()),
            "mean": list(arch.mean),
            "std": list(arch.std),
        }
    crop = _check_sizes(int(config["input_size"]), int(config.get("crop_size") or 0),
                        encoders.get(config["arch"]).size_multiple)
    out.mkdir(parents=True, exist_ok=True)

    dataset = pdata.discover(args.data if args.data else config["data"])
    split_file = args.split_file or (config.get("split_file") if args.resume else None)
    leaky_wanted = bool(getattr(args, "leaky_split", False) or config.get("per_image_split"))
    config["per_image_split"] = leaky_wanted
    split = pdata.load_or_create_split(dataset, split_file, seed=config["seed"], per_image=leaky_wanted)
    config["split_file"] = str(split.path)
    config["split_leaky"] = split.leaky
    cmd = "polypvision train " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 1 else "polypvision train"
    state.setdefault("commands", []).append(cmd)
    state["config"] = config

    size, batch = int(config["input_size"]), int(config["batch_size"])
    mean, std = tuple(config["mean"]), tuple(config["std"])
    train_samples = pdata.select(dataset, split, "train")
    val_samples = pdata.select(dataset, split, "val")
    print(f"[{out.name}] data {dataset.root}: train {len(train_samples)} / val {len(val_samples)} frames"
          f" ({'per-image split: LEAKY' if split.leaky else 'whole sequences'}; split {split.path})", flush=True)
    imgs, masks = load_train_arrays(train_samples)
    validator = Validator(val_samples, size, mean, std)
    steps = max(1, len(imgs) // batch)
    start = int(state.get("epoch", 0))
    epochs = int(config["epochs"])
    keras.utils.set_random_seed(int(config["seed"]) + start)
    ds = make_dataset(imgs, masks, size, batch, mean, std, seed=int(config["seed"]) + start, crop=crop)

    model = build_model(config, crop or size)
    # Patches train a copy built at the crop size; validation runs the same weights at full size.
    vmodel = build_model(config, size) if crop else model

    def _score():
        if vmodel is not model:
            vmodel.set_weights(model.get_weights())
        return validator.score(vmodel)

    if args.resume and (out / "last.weights.h5").is_file():
        model.load_weights(out / "last.weights.h5")
        print(f"[{out.name}] resumed at epoch {start} from {out / 'last.weights.h5'}", flush=True)
    print(f"[{out.name}] {config['arch']} {model.count_params():,} parameters, input {size}x{size}"
          f"{f' (trained on {crop}x{crop} crops)' if crop else ''}, batch {batch}, "
          f"{steps} steps/epoch, epochs {start}..{epochs}", flush=True)

    hist_path = out / "history.csv"
    if not hist_path.is_file():
        with open(hist_path, "w", newline="") as f:
            csv.writer(f).writerow(HISTORY_FIELDS)
    best = float(state.get("best_dice", -1.0))
    wall = float(state.get("wall_s", 0.0))
    phase_now = None
    ema: list | None = None
    bad_epochs = int(state.get("bad_epochs", 0))
    for epoch in range(start, epochs):
        t0 = time.time()
        phase, lr = start_epoch(model, config, epoch, epochs, phase_now)
        phase_now = phase
        prog = _Progress(out.name, epoch, epochs, steps, float(config["ema_decay"]), ema)
        hist = model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[prog.cb], shuffle=False)
        ema = prog.ema
        loss = float(hist.history["loss"][-1])
        raw_scores = _score()
        model.save_weights(out / "last.weights.h5")
        raw_w = model.get_weights()
        model.set_weights(ema)
        ema_scores = _score()
        model.save_weights(out / "last_ema.weights.h5")
        # The EMA usually wins, but averaged weights do not match averaged BatchNorm
        # statistics in a network that is still changing fast (a UNet from scratch):
        # keep whichever of the two scores better this epoch.
        use_ema = ema_scores[0.5][0] >= raw_scores[0.5][0]
        scores = ema_scores if use_ema else raw_scores
        if not use_ema:
            model.set_weights(raw_w)
        dice, iou = scores[0.5]
        improved = dice > best
        if improved:
            best = dice
            model.save_weights(out / "best.weights.h5")
            state["best_epoch"] = epoch + 1
            state["best_weights"] = "ema" if use_ema else "raw"
            state["best_scores"] = {str(t): v for t, v in scores.items()}
            bad_epochs = 0
        else:
            bad_epochs += 1
        model.set_weights(raw_w)
        dt = time.time() - t0
        wall += dt
        state.update(epoch=epoch + 1, best_dice=best, wall_s=wall, bad_epochs=bad_epochs, phase=phase)
        save_state(state_path, state)
        with open(hist_path, "a", newline="") as f:
            csv.writer(f).writerow([epoch + 1, phase, f"{lr:.3g}", f"{loss:.4f}", f"{dice:.4f}", f"{iou:.4f}",
                                    f"{ema_scores[0.5][0]:.4f}", f"{raw_scores[0.5][0]:.4f}", f"{best:.4f}", f"{dt:.0f}", f"{wall:.0f}"])
        left = (epochs - epoch - 1) * dt
        print(f"[{out.name}] epoch {epoch + 1}/{epochs} {phase} lr {lr:.2g} loss {loss:.4f} val Dice {dice:.4f} "
              f"IoU {iou:.4f} (EMA {ema_scores[0.5][0]:.4f}, raw {raw_scores[0.5][0]:.4f}) best {best:.4f}{' *' if improved else ''} "
              f"{fmt_duration(dt)}/epoch ETA {fmt_duration(left)}", flush=True)
        if bad_epochs >= int(config["patience"]) and phase != "warmup":
            print(f"[{out.name}] early stop: no val Dice gain for {bad_epochs} epochs", flush=True)
            break
    # Threshold chosen on validation with the best weights.
    if (out / "best.weights.h5").is_file():
        scores = {float(k): v for k, v in state.get("best_scores", {}).items()}
        if scores:
            t_best = choose_threshold(scores)
            state["threshold"] = t_best
            state["val_dice_at_threshold"] = scores[t_best][0]
    state["finished"] = True
    state_path.write_text(json.dumps(state, indent=1))
    print(f"[{out.name}] done: best val Dice {best:.4f} at epoch {state.get('best_epoch')}, "
          f"threshold {state.get('threshold')}, wall {fmt_duration(wall)}", flush=True)
    return 0
