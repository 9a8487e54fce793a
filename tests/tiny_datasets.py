"""Tiny synthetic segmentation datasets for tests (never the real data).

Each frame is a green background with one red disc; the mask is the disc. The toy ONNX
model (sigmoid of redness) segments it almost perfectly, which makes evaluation
results predictable.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def make_dataset(
    root: Path,
    n_seq: int = 6,
    per_seq: int = 3,
    size: tuple[int, int] = (48, 40),
    sequences: bool = True,
    ext: str = ".png",
    seed: int = 0,
) -> Path:
    """Write images/, masks/ (3-channel 0/255 like ClinicDB) and optionally sequences.csv."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    w, h = size
    rows = ["frame,sequence"]
    frame = 1
    for s in range(n_seq):
        for _ in range(per_seq):
            img = np.zeros((h, w, 3), np.uint8)
            img[:] = (30, 160, 40)  # BGR: green
            cx, cy, r = (
                int(rng.integers(12, w - 12)),
                int(rng.integers(12, h - 12)),
                int(rng.integers(5, 10)),
            )
            cv2.circle(img, (cx, cy), r, (40, 40, 220), -1)  # red disc
            mask = np.zeros((h, w, 3), np.uint8)
            cv2.circle(mask, (cx, cy), r, (255, 255, 255), -1)
            cv2.imwrite(str(root / "images" / f"{frame}{ext}"), img)
            cv2.imwrite(str(root / "masks" / f"{frame}.png"), mask)
            rows.append(f"{frame},{s + 2}")
            frame += 1
    if sequences:
        (root / "sequences.csv").write_text("\n".join(rows) + "\n")
    return root


def make_negatives(
    root: Path,
    n_seq: int = 4,
    per_seq: int = 3,
    size: tuple[int, int] = (48, 40),
    seed: int = 0,
    red_speck: bool = False,
) -> Path:
    """A folder of polyp-free frames named like PolypGen's (``seq<K>_img<N>.jpg``): green, no disc;
    ``red_speck`` puts a small red dot (a false-alarm bait for the toy model) on every frame."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    w, h = size
    for s in range(n_seq):
        for k in range(per_seq):
            img = np.zeros((h, w, 3), np.uint8)
            img[:] = (30, 160 + int(rng.integers(0, 20)), 40)
            if red_speck:
                cv2.circle(
                    img,
                    (int(rng.integers(5, w - 5)), int(rng.integers(5, h - 5))),
                    1,
                    (40, 40, 220),
                    -1,
                )
            cv2.imwrite(str(root / "images" / f"seq{s + 3}_img{k + 1}.png"), img)
    return root


def make_test_list(root: Path, ids: list[str]) -> Path:
    """A published-test-list file beside a dataset (like Kvasir-SEG's test-pranet.txt)."""
    path = root / "test-published.txt"
    path.write_text("\n".join(ids) + "\n")
    return path
