"""Training tests: TensorFlow is optional (the ``train`` extra); without it they skip."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
