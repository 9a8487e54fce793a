"""Where PolypVision finds its shipped data and where it may write.

Shipped, read-only data (the ONNX models with ``manifest.json``, the leak-free split files):

* an installed wheel carries them as package data in ``polypvision/_data/{models,splits}``;
* a source checkout (editable install, or ``PYTHONPATH``) uses the repository's top-level
  ``models/`` and ``splits/``;
* ``POLYPVISION_MODELS`` names another models folder (one with a ``manifest.json``).

Nothing is ever written inside the installed package. A split made on first use goes to the
checkout's ``splits/`` when running from a checkout (developers commit it), else to the user's
data folder (``POLYPVISION_DATA``, or the platform's usual one, see :func:`user_data_dir`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGED_DATA = PACKAGE_DIR / "_data"
MODELS_ENV = "POLYPVISION_MODELS"
DATA_ENV = "POLYPVISION_DATA"


def checkout_root() -> Path | None:
    """The repository root when the package runs from a source checkout, else None."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "models").is_dir():
        return root
    return None


def models_dir() -> Path:
    """The folder with the shipped models: ``$POLYPVISION_MODELS``, the wheel's,
    or the checkout's."""
    env = os.environ.get(MODELS_ENV)
    if env:
        return Path(env).expanduser()
    packaged = PACKAGED_DATA / "models"
    if (packaged / "manifest.json").is_file():
        return packaged
    root = checkout_root()
    return root / "models" if root is not None else packaged


def shipped_splits_dir() -> Path:
    """The shipped split files (read-only): the wheel's, or the checkout's ``splits/``."""
    packaged = PACKAGED_DATA / "splits"
    if packaged.is_dir():
        return packaged
    root = checkout_root()
    return root / "splits" if root is not None else packaged


def user_data_dir() -> Path:
    """Per-user data: ``$POLYPVISION_DATA``, else ``%LOCALAPPDATA%\\polypvision`` (Windows),
    ``~/Library/Application Support/polypvision`` (macOS), ``$XDG_DATA_HOME/polypvision`` or
    ``~/.local/share/polypvision`` (elsewhere)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = str(Path.home() / "Library" / "Application Support")
    else:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "polypvision"


def new_splits_dir() -> Path:
    """Where a split made on first use is written: the checkout's ``splits/``, else the user's."""
    root = checkout_root()
    return root / "splits" if root is not None else user_data_dir() / "splits"


def inside_package(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` lies inside the polypvision package folder (never to be written)."""
    return Path(path).resolve().is_relative_to(PACKAGE_DIR)
