"""A small archive of procedures for the batch tests, and jobs that fail on purpose.

The jobs are module-level functions so that worker processes (spawned) and Ray workers can
import them by name; they read where to leave their marks from the environment, which both
kinds of worker inherit from the test process.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import cv2
import numpy as np

from polypvision.batch.job import run_job
from polypvision.demo import write_synthetic_clip

KILL_DIR_ENV = "PV_TEST_KILL_DIR"
# Frames of the designed frame folder that show a red disk (the toy model outlines red):
# 5-14 and 17-24 (a 0.2 s gap at 10 fps: bridged), 32 alone (0.1 s: too short), 40-49.
RED_FRAMES = set(range(5, 15)) | set(range(17, 25)) | {32} | set(range(40, 50))
FOLDER_FRAMES = 55


def write_frame_folder(
    folder: Path, frames: int = FOLDER_FRAMES, red: set[int] = RED_FRAMES
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        img = np.full((96, 128, 3), 90, np.uint8)
        if i in red:
            cv2.circle(img, (40 + i % 40, 48), 14 + (i % 7), (40, 40, 220), -1)
        cv2.imwrite(str(folder / f"{i:03d}.png"), img)
    return folder


def make_archive(root: Path, clips: int = 2, frames: int = 16, broken: bool = True) -> Path:
    """root/a/c<i>.mp4 (stamped synthetic clips), root/b/frames/ (designed), root/b/broken.mp4."""
    for i in range(clips):
        (root / "a").mkdir(parents=True, exist_ok=True)
        write_synthetic_clip(
            root / "a" / f"c{i}.mp4", frames + i, 160, 120, 10.0, seed=i, stamp=True
        )
    write_frame_folder(root / "b" / "frames")
    if broken:
        (root / "b" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not a video " * 64)
    return root


def _marks(proc) -> Path | None:
    d = os.environ.get(KILL_DIR_ENV)
    return Path(d) / f"{proc.out_rel.name}.attempts" if d else None


def killed_once_job(proc, ctx, progress=None):
    """Kills its own worker the first time it meets a procedure named 'c0'; then works."""
    mark = _marks(proc)
    if proc.out_rel.name == "c0" and mark is not None and not mark.exists():
        mark.write_text("1")
        os.kill(os.getpid(), signal.SIGKILL)
    return run_job(proc, ctx, progress)


def killed_always_job(proc, ctx, progress=None):
    """Kills its worker on every attempt at 'c0' (counting them); the others work."""
    mark = _marks(proc)
    if proc.out_rel.name == "c0" and mark is not None:
        n = int(mark.read_text()) + 1 if mark.exists() else 1
        mark.write_text(str(n))
        os.kill(os.getpid(), signal.SIGKILL)
    return run_job(proc, ctx, progress)


def log_lines_without_timing(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        rec.pop("latency_ms", None)
        out.append(rec)
    return out


def decode_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(c.streams.video[0])]
