"""Training tests: TensorFlow is optional (the ``train`` extra); without it they skip."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture
def export_args():
    """``polypvision export CHECKPOINT -o OUTPUT --threads 1 [EXTRA...]`` as the real command
    line parses it (its defaults, not a hand-built namespace that can miss one)."""
    from polypvision.cli import build_parser

    def parse(checkpoint, output, *extra: str):
        return build_parser().parse_args(
            ["export", str(checkpoint), "-o", str(output), "--threads", "1", *extra]
        )

    return parse
