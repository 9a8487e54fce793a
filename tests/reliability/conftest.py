"""Small clips for the reliability suite (helpers live in relhelpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from relhelpers import synthetic_frames, write_video


@pytest.fixture(scope="session")
def clip_faststart(tmp_path_factory) -> Path:
    """60 stamped 160x120 frames, index at the front (+faststart), a keyframe every 5 frames."""
    return write_video(
        tmp_path_factory.mktemp("rel") / "faststart.mp4",
        synthetic_frames(60),
        options={"movflags": "+faststart"},
        gop=5,
    )


@pytest.fixture(scope="session")
def clip_stamped(tmp_path_factory) -> Path:
    """25 stamped 160x120 frames at 10 fps (the usual moov-at-the-end MP4)."""
    return write_video(tmp_path_factory.mktemp("rel") / "stamped.mp4", synthetic_frames(25))
