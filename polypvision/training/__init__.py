"""Training, export and the model zoo (TensorFlow; behind the ``train`` extra).

Nothing here is imported by the runtime. This package's ``__init__`` imports nothing
heavy, so ``import polypvision.training`` is cheap; TensorFlow loads only when a
submodule that needs it (``unet``, ``encoders``, ``train``, ``export``) is imported.
"""

from __future__ import annotations
