"""The bundled demo clip: made by the project's own synthetic generator on first use.

Written once as a real H.264 MP4 into the user's cache folder, then read back through the
ordinary video-file source, so the demo exercises the same decode path as a real recording.
"""

from __future__ import annotations

import os
from pathlib import Path

DEMO_VERSION = 1
DEMO_FRAMES = 250
DEMO_SIZE = (640, 480)
DEMO_FPS = 25.0


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "polypvision"


def write_synthetic_clip(
    path: Path, frames: int, width: int, height: int, fps: float, seed: int = 0, stamp: bool = False
) -> Path:
    """Render a synthetic clip to an H.264 file (temp file, then rename)."""
    from polypvision.recording import VideoWriter
    from polypvision.sources.synthetic import SyntheticClip

    clip = SyntheticClip(width, height, seed, stamp)
    writer = VideoWriter(Path(path), width, height, fps, crf=18)
    try:
        for i in range(frames):
            writer.write_image(clip.frame(i))
    except BaseException:
        writer.abort()
        raise
    return writer.commit()


def demo_clip_path() -> Path:
    path = cache_dir() / f"demo-v{DEMO_VERSION}.mp4"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_synthetic_clip(path, DEMO_FRAMES, *DEMO_SIZE, DEMO_FPS)
    return path
