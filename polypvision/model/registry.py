"""Where the shipped models live, and which one to use by default.

``manifest.json`` in the models folder names the default per execution provider: the real-time
model on a CPU, the most accurate one when CUDA really runs. The folder is the installed
package's data, or ``models/`` of a source checkout; ``POLYPVISION_MODELS`` points elsewhere
(see :mod:`polypvision.paths`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from polypvision import paths
from polypvision.errors import ContractError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def models_dir() -> Path:
    return paths.models_dir()


def read_manifest(folder: Path | None = None) -> dict:
    folder = folder or models_dir()
    path = folder / MANIFEST
    if not path.is_file():
        raise ContractError(
            f"no shipped models found ({path} is missing); pass --model PATH to an .onnx file "
            f"or set {paths.MODELS_ENV} to a folder with a {MANIFEST}"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ContractError(
            f"cannot read {path}: {exc}; reinstall polypvision or restore it from the repository"
        ) from None


def default_model(provider: str = "cpu", folder: Path | None = None) -> Path:
    """The shipped model for 'cpu' or 'cuda' (the provider that will really run)."""
    folder = folder or models_dir()
    manifest = read_manifest(folder)
    key = "cuda_default" if provider.lower() == "cuda" else "cpu_default"
    name = manifest.get(key) or manifest.get("cpu_default")
    if not name:
        raise ContractError(f"{folder / MANIFEST} names no '{key}' model; pass --model PATH")
    path = folder / name
    if not path.is_file():
        raise ContractError(
            f"shipped model {path} is missing; pass --model PATH, or reinstall polypvision"
        )
    return path


def resolve_model(model: Path | None, provider: str, realtime: bool = False) -> Path:
    """The model to use: the one given, else a shipped one.

    Offline work takes the manifest's default for the provider; live viewing (``realtime``)
    takes the shipped model with the best validation Dice that a quick timing shows keeps up here.
    """
    if model is not None:
        return model
    if realtime:
        path, reason = pick_realtime("auto" if provider != "cpu" and cuda_likely() else "cpu")
        log.info("model: %s", reason)
        return path
    return default_model("cuda" if provider != "cpu" and cuda_likely() else "cpu")


def shipped_models(folder: Path | None = None) -> list[Path]:
    folder = folder or models_dir()
    return sorted(folder.glob("*.onnx")) if folder.is_dir() else []


def cuda_likely() -> bool:
    """Cheap check, before any session exists, whether the CUDA provider could run."""
    import ctypes.util

    return ctypes.util.find_library("cuda") is not None or os.path.exists(
        "/proc/driver/nvidia/version"
    )


def _val_dice(seg) -> float:
    """A loaded model's validation mean Dice from its
    contract's training provenance (0 when absent).

    Validation, not test: the test sequences are evaluated once per shipped model and reported,
    never used to choose anything, the choice of the app's model included.
    """
    training = seg.contract.training
    value = training.get("val_dice_at_0.5") if isinstance(training, dict) else None
    return float(value) if isinstance(value, (int, float)) else 0.0


SAME_SPEED = 1.15  # timings within 15% of each other count as the same speed at start-up


def pick_realtime(
    provider: str = "auto",
    target_fps: float = 30.0,
    folder: Path | None = None,
    budget: float = 0.6,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[Path, str]:
    """The most accurate shipped model
    (by validation Dice) whose model-only time fits the frame budget here.

    A quick timing at start-up (a few batch-1 runs per candidate) decides, because what is
    real time depends on the machine: the model may use at most ``budget`` of the frame time
    at ``target_fps`` (the rest is decode, drawing and display). When none fits, the most
    accurate of those within ``SAME_SPEED`` of the fastest is used: three timed runs cannot rank
    two models 5% apart, and the choice between them should not be a coin toss on speed.
    Returns (path, reason). ``clock`` is injectable so tests time fake models without sleeping.
    """
    import numpy as np

    from polypvision.model.session import Segmenter, live_options

    folder = folder or models_dir()
    loaded = []
    for path in shipped_models(folder):  # each session is created once, for ranking and timing
        try:
            loaded.append(
                Segmenter(path, provider, **live_options())
            )  # timed as the live view runs it
        except Exception:  # an unloadable candidate is simply not chosen
            continue
    if not loaded:
        raise ContractError(f"no shipped models that load in {folder}; pass --model PATH")
    limit_ms = 1000.0 / target_fps * budget
    timed: list[tuple[float, Path]] = []  # (ms, path) in order of validation Dice, best first
    for seg in sorted(loaded, key=_val_dice, reverse=True):
        path = seg.path
        img = np.zeros((seg.contract.input.height, seg.contract.input.width, 3), np.uint8)
        # A session's first run allocates and can take several times a normal run, by an amount
        # that varies run to run, so it is a warm-up and never judged.
        seg.predict_small([img])
        t0 = clock()
        seg.predict_small([img])
        first_ms = (clock() - t0) * 1000.0
        if timed and first_ms > 3.0 * min(t[0] for t in timed):
            # far slower than one already timed (e.g. the base-64 UNet): no need for more runs
            continue
        t0 = clock()
        for _ in range(2):
            seg.predict_small([img])
        ms = (first_ms + (clock() - t0) * 1000.0) / 3
        if ms <= limit_ms:
            return (
                path,
                f"{path.name}: most accurate model that runs in real time here ({ms:.0f} ms per "
                "frame)",
            )
        timed.append((ms, path))
    best_ms = min(t[0] for t in timed)  # the first candidate is always timed
    ms, path = next(t for t in timed if t[0] <= best_ms * SAME_SPEED)
    return path, (
        f"{path.name}: no shipped model reaches {target_fps:g} FPS here; using the most accurate "
        f"of the fastest ({ms:.0f} ms per frame)"
    )
