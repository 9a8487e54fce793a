"""A contact sheet of the frames where a model fails worst, to look at (not to commit:
it shows dataset frames).

    python scripts/worst_frames.py --model models/M.onnx --data ../shared/data/Kvasir-SEG \
        --data ../shared/data/CVC-ClinicDB
        --negatives ../shared/data/PolypGen-negatives -o /tmp/worst.png

For each polyp dataset, the test frames with the lowest Dice of the mask the app draws (ground
truth outlined green, the app's mask red); for each polyp-free folder, the test frames on which
the app reports a polyp. Runs the same evaluation as ``polypvision evaluate``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from polypvision import data as pdata
from polypvision.evaluate import Counts, _predict, app_decisions
from polypvision.model.session import Segmenter

TILE = 256


def _tile(img: np.ndarray, gt: np.ndarray, pred: np.ndarray, label: str) -> np.ndarray:
    h, w = img.shape[:2]
    s = TILE / max(h, w)
    small = cv2.resize(img, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA)
    for m, colour in ((gt, (0, 220, 0)), (pred, (0, 0, 255))):
        mm = cv2.resize(
            m.astype(np.uint8) * 255, small.shape[1::-1], interpolation=cv2.INTER_NEAREST
        )
        contours, _ = cv2.findContours(mm, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(small, contours, -1, colour, 2)
    canvas = np.zeros((TILE + 18, TILE, 3), np.uint8)
    canvas[: small.shape[0], : small.shape[1]] = small
    cv2.putText(
        canvas,
        label[:40],
        (2, TILE + 13),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.4,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    return canvas


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", action="append", default=[])
    ap.add_argument("--negatives", action="append", default=[])
    ap.add_argument("--split-file", default=None)
    ap.add_argument("--per-dataset", type=int, default=8)
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    seg = Segmenter(args.model, provider="cpu")
    tiles = []
    for sd in pdata.load_splits(
        pdata.specs_from(args.data, args.negatives), args.split_file, create=False
    ):
        samples = sd.samples("test")
        pairs = [pdata.load_pair(s) for s in samples]
        frames, masks = [p[0] for p in pairs], [p[1] for p in pairs]
        small, _ = _predict(seg, frames, 8)
        dec = app_decisions(seg, samples, frames, small)
        scored = []
        for i, ((present, m), gt) in enumerate(zip(dec, masks)):
            pred = m > 127
            if sd.negative:
                if present:
                    scored.append((0.0, i))
            else:
                scored.append((Counts.of(pred, gt).metrics()["dice"], i))
        for d, i in sorted(scored)[: args.per_dataset]:
            tiles.append(
                _tile(
                    frames[i],
                    masks[i],
                    dec[i][1] > 127,
                    f"{sd.name} {samples[i].stem} Dice {d:.2f}",
                )
            )
    if not tiles:
        print("nothing to show")
        return 0
    cols = 4
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[k : k + cols]) for k in range(0, len(tiles), cols)]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.output, np.vstack(rows))
    print(f"wrote {args.output} ({len(tiles)} tiles)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
