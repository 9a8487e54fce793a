"""``polypvision train --refit-of RUN``: a run's recipe retrained on train + validation.

Why: with few sequences in all, the validation sequences are a sizeable share of the polyps there
are to learn from. Once validation has chosen the recipe and its epoch count, the usual last step is
to retrain that recipe, for that many epochs, on train + validation, and report the test split once.
Nothing is chosen during a refit (there is no held-out data left to choose with): the learning-rate
schedule is the original run's (same total length, stopped at its best epoch), and the weights kept
are of the kind that run kept at that epoch (EMA or raw). The validation Dice the exported contract
carries is the original run's, labelled as the recipe's, so the app's model ranking is unchanged by
a refit."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from polypvision import data as pdata
from polypvision.errors import UserError
from polypvision.training import trainsets


def refit(args) -> int:
    import keras

    from polypvision.training.callbacks import RefitCheckpoint, StepProgress, WeightEMA
    from polypvision.training.loop import epoch_lr, epoch_phase, fit_epochs
    from polypvision.training.train import (
        build_model,
        configure_threads,
        fmt_duration,
        save_state,
        save_weights_atomic,
    )

    src = Path(args.refit_of)
    try:
        source = json.loads((src / "state.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(
            f"--refit-of {src}: cannot read its state.json ({exc}); pass a run folder from "
            "'polypvision train'"
        ) from None
    if not source.get("best_epoch") or not source.get("best_scores"):
        raise UserError(
            f"--refit-of {src}: the run has no validation-chosen epoch yet; let it train first"
        )
    if len(source.get("commands", [])) > 1:
        raise UserError(
            f"--refit-of {src}: the run was resumed ({len(source['commands'])} commands), so its "
            "schedule may have changed on the way and cannot be replayed; refit single-command runs"
        )
    if not args.out:
        raise UserError("--refit-of needs --out, a new folder for the refit")
    out = Path(args.out)
    if out.resolve() == src.resolve():
        raise UserError(f"--out {out} is the run being refitted; write the refit to a new folder")
    state_path = out / "state.json"
    if state_path.is_file() and not args.force:
        raise UserError(
            f"{out} already holds a run; pass --force to start the refit over (a refit cannot "
            "resume)"
        )
    config: dict[str, Any] = dict(source["config"])
    if config.get("crop_size"):
        raise UserError(
            f"--refit-of {src}: patch-trained runs (--crop-size) are not supported by refit"
        )
    configure_threads(args.threads)
    n_epochs = int(source["best_epoch"])
    total = int(config["epochs"])
    kind = source.get("best_weights", "ema")
    specs = (
        pdata.specs_from(args.data, getattr(args, "negatives", None))
        if args.data
        else pdata.specs_of_config(config)
    )
    split_files = config["split_file"] if isinstance(config["split_file"], dict) else None
    split_path = Path(args.split_file or (None if split_files else config["split_file"]) or "")
    missing = [
        p
        for p in ([split_path] if not split_files else map(Path, split_files.values()))
        if not p.is_file()
    ]
    if missing:  # never make a new split here: it could move test sequences into training
        raise UserError(
            f"--refit-of {src}: its split file {missing[0]} is missing; pass the run's split "
            "with --split-file"
        )
    sets = pdata.load_splits(specs, split_files or split_path, create=False)
    if any(d.split.leaky for d in sets):
        raise UserError(
            "--refit-of: the run's split is per image (leaky); refit only leak-free runs"
        )
    groups = [(d, d.samples("train") + d.samples("val")) for d in sets]
    samples = [s for _, ss in groups for s in ss]
    size, batch = int(config["input_size"]), int(config["batch_size"])
    out.mkdir(parents=True, exist_ok=True)
    cmd = (
        "polypvision train " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if len(sys.argv) > 1
        else "polypvision train"
    )
    state: dict[str, Any] = {
        "commands": [*source.get("commands", []), cmd],
        "config": {**config, "threads": args.threads},
        "refit": {
            "of": str(src),
            "epochs": n_epochs,
            "schedule_epochs": total,
            "weights": kind,
            "frames": len(samples),
            "sequences": "train + val",
            "recipe_val_dice_at_0.5": source.get("best_dice"),
            "note": (
                "trained on train + val: its validation Dice is the original run's (the "
                "recipe's); no held-out data chose anything in this run"
            ),
        },
        # what export reads: the recipe's validation figures and threshold choice
        "best_dice": source.get("best_dice"),
        "best_scores": source["best_scores"],
        "best_epoch": n_epochs,
    }
    print(
        f"[{out.name}] refit of {src}: {len(samples)} frames (train + val), {n_epochs} of "
        f"{total} scheduled epochs, keeping the {kind} weights",
        flush=True,
    )
    arrays = [(*trainsets.training_arrays(ss, config), d.negative) for d, ss in groups if ss]
    if config.get("background_crops"):
        arrays = trainsets.with_background_crops(arrays, int(config["seed"]))
    keras.utils.set_random_seed(int(config["seed"]))
    share = float(config.get("negative_share") or 0.15)
    model = build_model(config, size)
    ds = trainsets.make_mixed_dataset(
        arrays,
        size,
        batch,
        tuple(config["mean"]),
        tuple(config["std"]),
        seed=int(config["seed"]),
        negative_share=share,
        n_outputs=len(model.outputs),
    )
    n_pos = sum(len(a[0]) for a in arrays if not a[2])
    steps = max(1, round((n_pos / (1.0 - share) if n_pos < len(samples) else len(samples)) / batch))
    averaged = WeightEMA(float(config["ema_decay"]))

    def say(epoch: int, loss: float, seconds: float) -> None:
        print(
            f"[{out.name}] epoch {epoch + 1}/{n_epochs} {epoch_phase(config, epoch)} lr "
            f"{epoch_lr(config, epoch, total):.2g} loss {loss:.4f} {fmt_duration(seconds)}/epoch",
            flush=True,
        )

    checkpoint = RefitCheckpoint(
        out,
        state,
        phase_of=lambda e: epoch_phase(config, e),
        save=save_weights_atomic,
        save_state=save_state,
        say=say,
    )
    # The run's schedule (its length ``total``), cut at the epoch validation chose.
    fit_epochs(
        model,
        ds,
        config,
        start=0,
        stop=n_epochs,
        schedule_epochs=total,
        steps=steps,
        callbacks=[averaged, StepProgress(out.name, n_epochs, steps), checkpoint],
    )
    if kind == "ema" and averaged.ema is not None:
        model.set_weights(averaged.ema)
    save_weights_atomic(
        model, out / "best.weights.h5"
    )  # what export reads: the refit's final weights
    state["finished"] = True
    save_state(state_path, state)
    print(
        f"[{out.name}] done: refit {n_epochs} epochs on {len(samples)} frames, wall "
        f"{fmt_duration(float(state.get('wall_s', 0.0)))}",
        flush=True,
    )
    return 0
