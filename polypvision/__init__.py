"""PolypVision: real-time polyp segmentation on colonoscopy video.

The package root imports nothing heavy: the headless core lives in submodules, the
desktop app in :mod:`polypvision.gui` (the only package that imports PySide6) and
training in :mod:`polypvision.training` (behind the ``train`` extra).
"""

from __future__ import annotations

import os

# FFmpeg (inside OpenCV) prints decoder complaints for every damaged file straight to the
# console; errors reach the user through our one-line messages instead.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

__version__ = "0.1.0"
