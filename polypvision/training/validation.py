"""Validation as the app measures it, and the decision threshold chosen from it.

Validation Dice is taken like the app sees a frame: the full frame resized to the model's size
with OpenCV, the probability resized back to the frame, thresholded, and Dice taken per image at
the frame's size, over a sweep of thresholds. ``train`` scores every epoch with it, ``train
--swa-of`` scores the averaged weights, and ``export`` picks the threshold from the scores a run
kept; they share this module rather than importing one another.
"""

from __future__ import annotations

import numpy as np

from polypvision import data as pdata

THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.2, 0.81, 0.05))


def choose_threshold(scores: dict[float, tuple[float, float]], tolerance: float = 0.01) -> float:
    """The threshold closest to 0.5 whose validation Dice is within ``tolerance`` of the best.

    Every CVC-ClinicDB frame holds a polyp, so validation cannot see false alarms on
    polyp-free frames, which the app meets all the time; the sweep's optimum drifts low
    for that reason. Where the curve is flat, 0.5 is kept.
    """
    best = max(v[0] for v in scores.values())
    ok = [t for t, v in scores.items() if v[0] >= best - tolerance]
    return float(min(ok, key=lambda t: (abs(t - 0.5), -scores[t][0])))


def preprocess_frames(frames_bgr: list[np.ndarray], size: int, mean, std) -> np.ndarray:
    """The app's preprocessing: resize (bilinear), BGR->RGB, /255, (x-mean)/std, NHWC."""
    import cv2

    out = np.empty((len(frames_bgr), size, size, 3), np.float32)
    m, s = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    for i, f in enumerate(frames_bgr):
        r = (
            cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR)[..., ::-1].astype(
                np.float32
            )
            / 255.0
        )
        out[i] = (r - m) / s
    return out


def dice_iou(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """Dice and IoU of one binary prediction, as ``polypvision evaluate`` counts them
    (one definition)."""
    from polypvision.evaluate import Counts

    m = Counts.of(pred, gt).metrics()
    return m["dice"], m["iou"]


class Validator:
    """Per-image Dice at frame size over a threshold sweep, as the app would see it."""

    def __init__(self, samples: list[pdata.Sample], size: int, mean, std, batch: int = 8) -> None:
        pairs = [pdata.load_pair(s) for s in samples]
        self.frames = [p[0] for p in pairs]
        self.masks = [p[1] for p in pairs]
        self.x = preprocess_frames(self.frames, size, mean, std)
        self.batch = batch

    def probabilities(self, model) -> list[np.ndarray]:
        import cv2

        probs = []
        for i in range(0, len(self.x), self.batch):
            out = np.asarray(model(self.x[i : i + self.batch], training=False))[..., 0]
            for j, p in enumerate(out):
                h, w = self.masks[i + j].shape
                probs.append(cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR))
        return probs

    def score(self, model) -> dict[float, tuple[float, float]]:
        probs = self.probabilities(model)
        res = {}
        for t in THRESHOLDS:
            d, j = zip(
                *(dice_iou(p > t, m) for p, m in zip(probs, self.masks, strict=True)), strict=True
            )
            res[t] = (float(np.mean(d)), float(np.mean(j)))
        return res


class MultiValidator:
    """One Validator per dataset of the run. The epoch's score (what picks the epoch, the kept
    weights and the threshold) is the mean over the polyp datasets of their validation mean Dice,
    each dataset weighing the same (one centre must not win by having more frames). Polyp-free
    datasets are measured apart: the share of their frames with any pixel over the threshold
    (the raw model, before the app's smoothing and gating) is logged every epoch."""

    def __init__(
        self, groups: list[tuple[str, list[pdata.Sample], bool]], size: int, mean, std
    ) -> None:
        self.polyp = {
            name: Validator(s, size, mean, std) for name, s, neg in groups if not neg and s
        }
        self.negative = {
            name: Validator(s, size, mean, std) for name, s, neg in groups if neg and s
        }

    def score(self, model) -> dict[float, tuple[float, float]]:
        """{threshold: (mean Dice, mean IoU)} over the polyp datasets; details in ``last``."""
        per = {name: v.score(model) for name, v in self.polyp.items()}
        self.last: dict[str, dict] = {"per_dataset": {n: r[0.5][0] for n, r in per.items()}}
        neg_probs = [p for v in self.negative.values() for p in v.probabilities(model)]
        self.last["negative_frames_flagged"] = (
            float(np.mean([float(p.max()) > 0.5 for p in neg_probs])) if neg_probs else None
        )
        return {
            t: (
                float(np.mean([r[t][0] for r in per.values()])),
                float(np.mean([r[t][1] for r in per.values()])),
            )
            for t in THRESHOLDS
        }
