"""``polypvision train``: fit a model on a leak-free split, resumable at any epoch.

Training may run for hours and be cut off at any time, so every epoch ends with a
checkpoint (``last.weights.h5``), the state (``state.json``) and a row of ``history.csv``;
``--resume`` continues from there, even at another input size (the networks are fully
convolutional: train small first, then fine-tune at the export size). The epochs run in
Keras's ``fit`` with callbacks (:mod:`polypvision.training.loop`,
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

import json
import os
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from polypvision import data as pdata
from polypvision.training import trainsets
from polypvision.training.loop import epoch_lr, epoch_phase
from polypvision.training.runs import (
    HISTORY_FIELDS,
    build_model,
    commit_epoch,
    configure_threads,
    fmt_duration,
    save_state,
    save_weights_atomic,
    truncate_history,
)
from polypvision.training.validation import MultiValidator, choose_threshold

__all__ = ["run"]

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


def run(args) -> int:
    """Train per ``args`` (see ``cli_train``); returns an exit status."""
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
