"""Where PolypVision finds its shipped data and where it may write.

Shipped, read-only data is package data, in the same place in a wheel and in a source checkout
(where the top-level ``models`` and ``splits`` are links to these folders):

* ``polypvision/models``: the ONNX models with ``manifest.json`` (``POLYPVISION_MODELS`` names
  another models folder, one with a ``manifest.json``);
* ``polypvision/splits``: the leak-free split files.

Nothing is ever written through the package folder. A split made on first use goes to the user's
data folder (``POLYPVISION_DATA``, or the platform's usual one, see :func:`user_data_dir`), or to
the ``--split-file`` given; in a checkout a developer who wants a committed split names it through
the top-level link (``--split-file splits/NAME.json``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_PACKAGE_NAMES = {PACKAGE_DIR, Path(os.path.abspath(__file__)).parent}  # resolved and as imported
MODELS_ENV = "POLYPVISION_MODELS"
DATA_ENV = "POLYPVISION_DATA"


def models_dir() -> Path:
    """The folder with the shipped models: ``$POLYPVISION_MODELS``, else the package's
    ``models``."""
    env = os.environ.get(MODELS_ENV)
    if env:
        return Path(env).expanduser()
    return PACKAGE_DIR / "models"


def shipped_splits_dir() -> Path:
    """The shipped split files (read-only): the package's ``splits``."""
    return PACKAGE_DIR / "splits"


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
    """Where a split made on first use is written: the user's data folder."""
    return user_data_dir() / "splits"


def inside_package(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` names a place in the polypvision package folder (never to be written).

    The path is made absolute without following links: a checkout's top-level ``splits`` link
    is the developer's way to write a split that gets committed, the package folder itself is
    not (and an installed package has no such link).
    """
    where = Path(os.path.abspath(path))
    return any(where.is_relative_to(package) for package in _PACKAGE_NAMES)
