"""PolypVision: real-time polyp segmentation on colonoscopy video.

The package root imports nothing heavy: the headless core lives in submodules, the
desktop app in :mod:`polypvision.gui` (the only package that imports PySide6) and
training in :mod:`polypvision.training` (behind the ``train`` extra).
"""

from __future__ import annotations

__version__ = "0.1.0"
