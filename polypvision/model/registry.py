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


def resolve_model(model: Path | None, provider: str) -> Path:
    """The model to use: the one given, else the manifest's default for the provider that will
    run (``cpu``, or ``cuda`` when asked for and likely to work).

    One policy for every command and the app: the manifest names the defaults by the written
    rule (docs/decisions.md: real time on the 2-core reference machine, then the alarm that finds
    the most validation polyp frames at the matched false-alarm rate), so a start-up never opens
    every shipped model to time it, and two launches never pick different models by chance.
    """
    if model is not None:
        return model
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
