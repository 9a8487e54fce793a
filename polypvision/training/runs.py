"""What every command on a run folder shares: the model its config describes, the run's files
(weights, ``state.json``, ``history.csv``) written so that a kill never leaves a half-written one,
and the provenance stamped into exports.

``train`` writes run folders, ``train --swa-of`` updates them and ``export`` reads them; each of
them imports this module, never another command, so the training package has no import cycle.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import Any

from polypvision.fileio import atomic_open, atomic_path, copy_file, write_text

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

# the last epochs' weights stay on disk, for weight averaging (SWA) after the run
KEEP_EPOCH_FILES = 8


def build_model(config: dict[str, Any], input_size: int | None = None):
    """The Keras model of a run's ``config``, at ``input_size`` (default: the config's)."""
    from polypvision.training import encoders

    arch = encoders.get(config["arch"])
    return arch.build(
        input_size=input_size or config["input_size"],
        base_filters=config.get("base_filters") or 16,
        pretrained=arch.pretrained,
        deep_supervision=bool(config.get("deep_supervision")),
        presence=bool(config.get("presence")),
    )


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
    """The checkout's short commit, for an export's provenance (None outside a checkout)."""
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


def save_weights_atomic(model, path: Path) -> str:
    """Write ``model``'s weights to ``path`` under a temporary name, then rename: a kill mid-write
    never leaves a truncated file under the name a state file points to. Returns the path relative
    to the run folder (``ckpt/...``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, ".weights.h5", lock=False) as tmp:  # HDF5 locks the file itself
        model.save_weights(tmp)
    return f"{path.parent.name}/{path.name}"


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write a run's state.json atomically (a run cut off mid-write must still resume)."""
    write_text(path, json.dumps(state, indent=1))


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
