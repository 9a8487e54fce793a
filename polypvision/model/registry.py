"""Where the shipped models live, and which one to use by default.

``models/manifest.json`` names the default per execution provider: the real-time model on a
CPU, the most accurate one when CUDA really runs. ``POLYPVISION_MODELS`` points elsewhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from polypvision.errors import ContractError

MANIFEST = "manifest.json"


def models_dir() -> Path:
    env = os.environ.get("POLYPVISION_MODELS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "models"


def read_manifest(folder: Path | None = None) -> dict:
    folder = folder or models_dir()
    path = folder / MANIFEST
    if not path.is_file():
        raise ContractError(f"no shipped models found ({path} is missing); pass --model PATH to an .onnx file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ContractError(f"cannot read {path}: {exc}; restore it from the repository") from None


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
        raise ContractError(f"shipped model {path} is missing; pass --model PATH or restore models/")
    return path


def shipped_models(folder: Path | None = None) -> list[Path]:
    folder = folder or models_dir()
    return sorted(folder.glob("*.onnx")) if folder.is_dir() else []


def cuda_likely() -> bool:
    """Cheap check, before any session exists, whether the CUDA provider could run."""
    import ctypes.util

    return ctypes.util.find_library("cuda") is not None or os.path.exists("/proc/driver/nvidia/version")
