"""``polypvision evaluate``: score a shipped ONNX model exactly as the app runs it.

The frames go through :class:`polypvision.model.session.Segmenter` (the app's own
preprocessing from the contract, onnxruntime, probability resized back to the frame),
so the numbers describe what a user gets, not what the training code saw. Images are
read by OpenCV as BGR, as the app's sources deliver them.

Reported: IoU and Dice both as the mean over images (what most polyp papers report)
and pooled over all pixels, precision, recall and pixel accuracy (the research table's
metrics), a threshold sweep, and per-sequence Dice. Accuracy says little here: about
87% of CVC-ClinicDB pixels are background, so a model that predicts nothing scores
~0.87. No TensorFlow is needed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polypvision import data as pdata

SWEEP = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
RESEARCH = {"iou": 0.4826, "precision": 0.8574, "recall": 0.6678, "accuracy": 0.9530}
CITATION = (
    "Bernal J., Sanchez F. J., Fernandez-Esparrach G., Gil D., Rodriguez C., Vilarino F. (2015). "
    "WM-DOVA maps for accurate polyp highlighting in colonoscopy: Validation vs. saliency maps from "
    "physicians. Computerized Medical Imaging and Graphics, 43, 99-111."
)
ACCURACY_NOTE = (
    "Pixel accuracy says little on this data: about {bg:.0%} of the pixels are background, so a model that "
    "predicts no polyp at all scores {bg:.3f}."
)


@dataclass
class Counts:
    tp: float = 0.0
    fp: float = 0.0
    fn: float = 0.0
    tn: float = 0.0

    @classmethod
    def of(cls, pred: np.ndarray, gt: np.ndarray) -> Counts:
        tp = float(np.count_nonzero(pred & gt))
        fp = float(np.count_nonzero(pred)) - tp
        fn = float(np.count_nonzero(gt)) - tp
        return cls(tp, fp, fn, float(gt.size) - tp - fp - fn)

    def __iadd__(self, other: Counts) -> Counts:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.tn += other.tn
        return self

    def metrics(self) -> dict[str, float]:
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        empty = tp + fp + fn == 0  # nothing to find and nothing found: perfect
        return {
            "iou": 1.0 if empty else tp / (tp + fp + fn),
            "dice": 1.0 if empty else 2 * tp / (2 * tp + fp + fn),
            "precision": (1.0 if fn == 0 else 0.0) if tp + fp == 0 else tp / (tp + fp),
            "recall": 1.0 if tp + fn == 0 else tp / (tp + fn),
            "accuracy": (tp + tn) / max(tp + fp + fn + tn, 1.0),
        }


def score(probs: Sequence[np.ndarray], masks: Sequence[np.ndarray], threshold: float) -> dict[str, Any]:
    """Mean-over-images and pooled metrics of probability maps against boolean masks."""
    per_image = []
    pooled = Counts()
    for p, m in zip(probs, masks, strict=True):
        c = Counts.of(p > threshold, m)
        pooled += c
        per_image.append(c.metrics())
    keys = ("iou", "dice", "precision", "recall", "accuracy")
    mean = {k: float(np.mean([r[k] for r in per_image])) for k in keys}
    return {"threshold": threshold, "mean": mean, "pooled": pooled.metrics(), "per_image": per_image}


def predict_all(segmenter, frames: Sequence[np.ndarray], batch: int = 8, tta: bool = False) -> tuple[list[np.ndarray], float]:
    """Probability maps at each frame's size, and the mean seconds per frame."""
    probs: list[np.ndarray] = []
    t0 = time.perf_counter()
    for i in range(0, len(frames), batch):
        chunk = list(frames[i:i + batch])
        out = segmenter.predict(chunk)
        if tta:
            flipped = segmenter.predict([np.ascontiguousarray(f[:, ::-1]) for f in chunk])
            out = [(a + b[:, ::-1]) / 2.0 for a, b in zip(out, flipped, strict=True)]
        probs.extend(np.asarray(p, np.float32) for p in out)
    return probs, (time.perf_counter() - t0) / max(len(frames), 1)


def evaluate(model: str | Path, data: str | Path, split: str = "test", split_file: str | Path | None = None,
             threshold: float | None = None, provider: str = "cpu", threads: int | None = None,
             batch: int = 8, tta: bool = False) -> dict[str, Any]:
    """Run ``model`` on one side of the dataset's split; returns every number the report shows."""
    from polypvision.model.session import Segmenter

    dataset = pdata.discover(data)
    if split == "all":
        samples, sp = dataset.samples, None
    else:
        sp = pdata.load_or_create_split(dataset, split_file)
        samples = pdata.select(dataset, sp, split)
    seg = Segmenter(model, provider=provider, threads=threads, max_batch=batch)
    pairs = [pdata.load_pair(s) for s in samples]
    frames = [p[0] for p in pairs]
    masks = [p[1] for p in pairs]
    probs, s_per_frame = predict_all(seg, frames, batch)
    t = float(threshold if threshold is not None else seg.contract.output.threshold)
    main = score(probs, masks, t)
    sweep = [{k: v for k, v in score(probs, masks, th).items() if k != "per_image"} for th in SWEEP]
    per_seq: dict[str, list[float]] = {}
    for s, r in zip(samples, main["per_image"], strict=True):
        if s.sequence is not None:
            per_seq.setdefault(s.sequence, []).append(r["dice"])
    total = sum(m.size for m in masks)
    background = 1.0 - sum(float(m.sum()) for m in masks) / max(total, 1)
    result: dict[str, Any] = {
        "model": str(model),
        "model_name": seg.contract.name,
        "data": str(dataset.root),
        "split": split,
        "split_file": _short(sp.path) if sp else None,
        "leaky": bool(sp.leaky) if sp else None,
        "images": len(samples),
        "sequences": sorted(per_seq, key=pdata.natural_key),
        "provider": seg.provider,
        "ms_per_frame": 1000.0 * s_per_frame,
        "batch": batch,
        "background_fraction": background,
        "threshold": t,
        "mean": main["mean"],
        "pooled": main["pooled"],
        "sweep": sweep,
        "per_sequence_dice": {k: float(np.mean(v)) for k, v in sorted(per_seq.items(), key=lambda kv: pdata.natural_key(kv[0]))},
    }
    if tta:
        tprobs, _ = predict_all(seg, frames, batch, tta=True)
        tt = score(tprobs, masks, t)
        result["tta_flip"] = {"mean": tt["mean"], "pooled": tt["pooled"]}
    return result


def _short(path: str | Path | None) -> str | None:
    """A path relative to the working directory when it lies below it (reports stay portable)."""
    if path is None:
        return None
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def _row(name: str, m: dict[str, float]) -> str:
    return f"| {name} | " + " | ".join(f"{m[k]:.4f}" if k in m else "n/a" for k in ("dice", "iou", "precision", "recall", "accuracy")) + " |"


def to_markdown(r: dict[str, Any]) -> str:
    """The report: main table beside the research numbers, sweep, per sequence, caveats."""
    leak = ""
    if r["leaky"]:
        why = ("the split is per image although sequences are known (`train --leaky-split`, for comparison "
               "with published tables only)" if r["sequences"] else
               "this dataset has no sequence information, so the split is per image")
        leak = (f"\n**LEAKY SPLIT**: {why}; near-duplicate frames of one video sit on both sides, "
                "so these numbers are inflated.\n")
    lines = [
        f"## {r['model_name']} on {Path(r['data']).name}, split `{r['split']}`",
        "",
        f"Model `{r['model']}`; {r['images']} images"
        + (f" from sequences {', '.join(r['sequences'])}" if r["sequences"] else "")
        + (f"; split file `{r['split_file']}` ({'per image, leaky' if r['leaky'] else 'whole sequences, leak-free'})" if r["split_file"] else "")
        + f"; threshold {r['threshold']:g}; provider {r['provider']}, {r['ms_per_frame']:.1f} ms/frame at batch {r['batch']}"
        " (preprocessing + inference + resize back).",
        leak,
        "| metric set | Dice | IoU | precision | recall | accuracy |",
        "|---|---|---|---|---|---|",
        _row("mean over images", r["mean"]),
        _row("pooled over pixels", r["pooled"]),
    ]
    if "tta_flip" in r:
        lines.append(_row("mean over images, flip TTA", r["tta_flip"]["mean"]))
    lines += [
        _row("research code (random per-image split, leaky; averaging not stated)", RESEARCH),
        "",
        ACCURACY_NOTE.format(bg=r["background_fraction"]),
        "",
        "Threshold sweep (the shipped threshold was chosen on the validation split, not here):",
        "",
        "| threshold | mean Dice | mean IoU | pooled Dice | pooled IoU | pooled precision | pooled recall |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in r["sweep"]:
        m, p = s["mean"], s["pooled"]
        lines.append(f"| {s['threshold']:.1f} | {m['dice']:.4f} | {m['iou']:.4f} | {p['dice']:.4f} | {p['iou']:.4f} | "
                     f"{p['precision']:.4f} | {p['recall']:.4f} |")
    if r["per_sequence_dice"]:
        lines += ["", "Mean Dice per sequence: " + ", ".join(f"{k}: {v:.3f}" for k, v in r["per_sequence_dice"].items())]
    if "clinicdb" in Path(r["data"]).name.lower():
        lines += ["", f"Data: CVC-ClinicDB. {CITATION}"]
    return "\n".join(lines) + "\n"


def run(args) -> int:
    r = evaluate(args.model, args.data, split=args.split, split_file=args.split_file, threshold=args.threshold,
                 provider=args.provider, threads=args.threads, batch=args.batch, tta=getattr(args, "tta", False))
    md = to_markdown(r)
    print(md)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(md)
    if args.json:
        doc = {k: v for k, v in r.items() if k not in ("sweep",)}
        doc["sweep_mean_dice"] = {f"{s['threshold']:.1f}": s["mean"]["dice"] for s in r["sweep"]}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    import sys

    from polypvision.cli_train import main as _main

    raise SystemExit(_main(["evaluate", *sys.argv[1:]]))
