"""``polypvision train --swa-of RUN``: average the weights of a run's last epochs (SWA), validated.

Validation Dice of a single epoch's weights swings from epoch to epoch, so the best epoch is
partly luck; averaging the weights of the last epochs of a cosine schedule (stochastic weight
averaging) lands in a flatter, usually better place. Whether it is better is decided the same
way as everything else: on the validation split, by the run's own score. The average replaces
the run's best weights only if it scores higher; either way the figures are kept in
``state.json`` under ``swa``, so the lever is reported whether it helped or not.

BatchNorm statistics are averaged with the weights: the encoder's stay frozen at their
ImageNet values throughout fine-tuning, and the decoder's change slowly late in the schedule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from polypvision import data as pdata
from polypvision.errors import UserError


def average(model, files: list[Path]) -> list[np.ndarray]:
    """The element-wise mean of the weights stored in ``files`` (same architecture)."""
    total: list[np.ndarray] | None = None
    for f in files:
        model.load_weights(f)
        w = [np.asarray(x, np.float64) for x in model.get_weights()]
        total = w if total is None else [a + b for a, b in zip(total, w, strict=True)]
    assert total is not None
    return [(t / len(files)).astype(np.float32) for t in total]


def swa(args) -> int:
    from polypvision.training.runs import (
        build_model,
        commit_epoch,
        configure_threads,
        save_weights_atomic,
    )
    from polypvision.training.validation import MultiValidator, choose_threshold

    run_dir = Path(args.swa_of)
    try:
        state: dict[str, Any] = json.loads((run_dir / "state.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(
            f"--swa-of {run_dir}: cannot read its state.json ({exc}); pass a run folder"
        ) from None
    k = int(args.swa_last or 5)
    kind = "last_ema" if state.get("best_weights", "ema") == "ema" else "last"
    recs = [
        r for r in state.get("epoch_files", []) if r.get(kind) and (run_dir / r[kind]).is_file()
    ]
    if len(recs) < 2 or k < 2:
        raise UserError(
            f"--swa-of {run_dir}: needs at least 2 kept epochs to average (has {len(recs)}; "
            f"--swa-last {k})"
        )
    recs = recs[-k:]
    configure_threads(args.threads)
    config = state["config"]
    size = int(config["input_size"])
    model = build_model(config, size)
    model.set_weights(average(model, [run_dir / r[kind] for r in recs]))
    specs = pdata.specs_of_config(config)
    sets = pdata.load_splits(specs, config.get("split_file"), create=False)
    validator = MultiValidator(
        [(d.name, d.samples("val"), d.negative) for d in sets],
        size,
        tuple(config["mean"]),
        tuple(config["std"]),
    )
    from polypvision.training.encoders import main_output

    scores = validator.score(main_output(model))
    dice = scores[0.5][0]
    name = f"ckpt/swa-e{recs[0]['epoch']:03d}-e{recs[-1]['epoch']:03d}.weights.h5"
    save_weights_atomic(model, run_dir / name)
    best_before = float(state.get("best_dice", -1.0))
    used = dice > best_before
    import shlex
    import sys

    cmd = (
        ("polypvision train " + " ".join(shlex.quote(a) for a in sys.argv[2:]))
        if len(sys.argv) > 1
        else f"polypvision train --swa-of {run_dir} --swa-last {k}"
    )
    state.setdefault("commands", []).append(cmd)
    state["swa"] = {
        "epochs": [r["epoch"] for r in recs],
        "weights": kind,
        "file": name,
        "val_dice": dice,
        "detail": validator.last,
        "best_single_epoch_val_dice": best_before,
        "used": used,
    }
    if used:
        state.update(
            best_dice=dice,
            best_file=name,
            best_scores={str(t): v for t, v in scores.items()},
            best_detail=validator.last,
            best_weights=f"swa of {kind}",
        )
        t = choose_threshold(scores)
        state.update(threshold=t, val_dice_at_threshold=scores[t][0])
    commit_epoch(run_dir, state)
    print(
        f"[{run_dir.name}] SWA of epochs {recs[0]['epoch']}..{recs[-1]['epoch']} ({kind}): val "
        f"Dice {dice:.4f} against the best epoch's {best_before:.4f}: "
        f"{'used' if used else 'not used'}",
        flush=True,
    )
    return 0
