"""``polypvision alarms``: the frame tier, the lesion tier and the AFROC plot of every model.

What a clinician lives with is not Dice but the alarm: how many polyp frames it flags, how many
polyp-free frames it flags, and how long a polyp is on screen before the first alarm. This command
measures each model through the app's own decision (:mod:`polypvision.operating`: the model's
smoother, gate, score, operating threshold and persistence, clip by clip), on the validation
and test sides of the split, and writes:

- ``alarms.json``: every figure (the README and the model cards are generated from it);
- ``alarms.md``: the tables, with the command that made them;
- ``afroc.png``: sensitivity against false-alarm rate over each model's decision score (test).

Each model is reported twice: as shipped (the decision in its contract), and at the matched
operating point (the same procedure that chooses a new model's decision, applied to this model's
validation frames: 4.5% false alarms on every polyp-free validation dataset), so models are
compared at equal clinical cost. The counting of the frame and lesion tiers is TRUE-Colon's
(:mod:`polypvision.frametier`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from polypvision import data as pdata
from polypvision.decision import DecisionSpec
from polypvision.operating import (
    TARGET_FALSE_ALARM,
    ScoredFrame,
    auroc,
    choose_decision,
    cross_fitted,
    decide,
    rates,
    score_frames,
    scores,
)

SPLITS = ("val", "test")


def _records(recs: Sequence[ScoredFrame], kind: str, alarmed: np.ndarray | None):
    """TRUE-Colon records: the frame's score, zeroed where persistence held the alarm back (so
    thresholding it reproduces the app's alarm exactly)."""
    from polypvision.frametier import FrameRecord

    s = scores(recs, kind)
    out = []
    for i, r in enumerate(recs):
        sc = float(s[i]) if alarmed is None or alarmed[i] else 0.0
        out.append(
            FrameRecord(
                dataset=r.dataset,
                stem=r.stem,
                video=r.clip if r.clip != r.stem else None,
                index=r.order,
                gt_boxes=[_fbox(b) for b in r.gt_boxes],
                pred_boxes=[_fbox(b) for b in r.boxes],
                pred_scores=[sc] * len(r.boxes),
                score=min(max(sc, 0.0), 1.0),
                width=r.width,
                height=r.height,
            )
        )
    return out


def _fbox(b: Sequence[int]) -> tuple[float, float, float, float]:
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))


def measure(recs: Sequence[ScoredFrame], spec: DecisionSpec, lesions: bool) -> dict[str, Any]:
    """The frame tier (per dataset and pooled) and, with ``lesions``, the lesion tier of
    ``spec`` on ``recs``."""
    from polypvision import frametier

    alarmed = decide(recs, spec)
    r = rates(recs, alarmed)
    thr = max(spec.threshold, 1e-12)
    tc = frametier.frame_tier(_records(recs, spec.score, alarmed), thr)
    out: dict[str, Any] = {
        "per_dataset": r["per_dataset"],
        "sensitivity_mean": r["sensitivity"],
        "false_alarm_max": r["false_alarm_max"],
        "pooled": {
            k: tc[k]
            for k in ("sensitivity", "false_alarm_rate", "localized_sensitivity", "tp", "fp")
        },
        "auroc": auroc(recs, spec.score),
    }
    if lesions:
        lt = frametier.lesion_tier(_records(recs, spec.score, alarmed), thr)
        out["lesions"] = lt
    return out


def afroc_points(recs: Sequence[ScoredFrame], kind: str) -> list[tuple[float, float]]:
    """Frame-level AFROC over the decision score (no persistence), on a grid of the scores'
    own quantiles (peak scores crowd just under 1, where a fixed grid would see nothing)."""
    from polypvision import frametier

    s = scores(recs, kind)
    pos = s[s > 0]
    grid = sorted(
        {0.001, *np.round(np.quantile(pos, np.linspace(0, 1, 60)), 6).tolist()}
        if len(pos)
        else {0.5}
    )
    grid = [g for g in grid if 0 < g <= 1]
    # The alarm is per frame: one ground-truth box per polyp frame (the union of its
    # components), so TRUE-Colon's "share of lesion boxes found" is the share of polyp frames
    # alarmed (each box may be claimed once, and a frame raises one whole-frame alert).
    frames = [replace(r, gt_boxes=[_union(r.gt_boxes)] if r.gt_boxes else []) for r in recs]
    return frametier.afroc(_records(frames, kind, None), localized=False, conf_grid=grid)


def _union(boxes: Sequence[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return (x0, y0, x1 - x0, y1 - y0)


def out_of_fold_figures(spec: DecisionSpec) -> dict[str, Any]:
    """The validation frame tier recorded with a cross-fitted decision (each frame scored by the
    gate that did not see its fold), in :func:`measure`'s shape."""
    v = spec.validation or {}
    return {
        "per_dataset": v.get("per_dataset", {}),
        "sensitivity_mean": v.get("sensitivity"),
        "false_alarm_max": v.get("false_alarm_max"),
        "auroc": v.get("auroc"),
        "out_of_fold": True,
    }


def measure_model(
    model: str | Path, sds: list[pdata.SplitData], batch: int = 8
) -> tuple[dict[str, Any], list[tuple[float, float]]]:
    from polypvision.model.session import Segmenter

    seg = Segmenter(model, provider="cpu", max_batch=batch)
    t0 = time.perf_counter()
    shipped = seg.contract.output.decision
    fitted_on_val = cross_fitted(seg.contract)
    # A gate cross-fitted on validation would score validation in-sample: its validation figures
    # are the out-of-fold ones its contract records, and its decision, chosen on them at the
    # target, is its matched one.
    splits = ("test",) if fitted_on_val else SPLITS
    recs = {s: [r for sd in sds for r in score_frames(seg, sd, s, batch)] for s in splits}
    matched = shipped if fitted_on_val else choose_decision(recs["val"], TARGET_FALSE_ALARM)[0]
    as_shipped = {s: measure(recs[s], shipped, s == "test") for s in splits}
    if fitted_on_val:
        as_shipped["val"] = out_of_fold_figures(shipped)
    res: dict[str, Any] = {
        "model": Path(model).name,
        "model_name": seg.contract.name,
        "decision": shipped.to_dict(),
        "decision_text": shipped.describe()
        if shipped.threshold > 0
        else "any outlined region (after the pixel gate)",
        "matched_decision": {k: v for k, v in matched.to_dict().items() if k != "validation"},
        "matched_text": matched.describe(),
        "validation_out_of_fold": fitted_on_val,
        "as_shipped": as_shipped,
        "matched": as_shipped
        if fitted_on_val
        else {s: measure(recs[s], matched, s == "test") for s in SPLITS},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return res, afroc_points(recs["test"], shipped.score)


def _pct(x: Any) -> str:
    return f"{x:.1%}" if isinstance(x, (int, float)) else "n/a"


def _tier_row(label: str, m: dict[str, Any], names: list[str]) -> str:
    per = m["per_dataset"]
    cells = []
    for n in names:
        d = per.get(n, {})
        cells.append(_pct(d.get("sensitivity", d.get("false_alarm"))))
    auc = m.get("auroc")
    return (
        f"| {label} | " + " | ".join(cells) + f" | {auc:.3f} |"
        if auc is not None
        else (f"| {label} | " + " | ".join(cells) + " | n/a |")
    )


def to_markdown(doc: dict[str, Any]) -> str:
    lines = [
        "# Alarms: frame tier, lesion tier, AFROC",
        "",
        f"Generated by `{doc['command']}` ({doc['generated']}); the figures of every model "
        "through the app's own decision (smoothing, gate, score, operating threshold, "
        "persistence), counted as TRUE-Colon counts them. Sensitivity: share of polyp frames "
        "on which the app reports a polyp; false alarms: share of polyp-free frames on which it "
        "does. *As shipped*: the decision in the model's contract. *Matched*: the operating "
        f"point chosen on this model's validation frames at {TARGET_FALSE_ALARM:.1%} false "
        "alarms on every polyp-free validation dataset (docs/decisions.md), so models compare "
        "at equal cost. AUROC: of the frame score, polyp against polyp-free frames.",
        "",
    ]
    for split, title in (("test", "Test"), ("val", "Validation")):
        names = doc["datasets"]
        head = " | ".join(
            f"{n} ({'polyp frames alarmed' if doc['kinds'][n] == 'polyp' else 'false alarms'})"
            for n in names
        )
        lines += [f"## Frame tier, {title.lower()}", "", f"| model, decision | {head} | AUROC |"]
        lines.append("|---" * (len(names) + 2) + "|")
        for m in doc["models"]:
            if split == "val" and m.get("validation_out_of_fold"):
                lines.append(
                    _tier_row(
                        f"`{m['model_name']}` as shipped and matched: {m['decision_text']}; "
                        "out of fold (its gate is cross-fitted on validation: each frame "
                        "scored by the gate fitted without its fold, as recorded at fitting)",
                        m["as_shipped"][split],
                        names,
                    )
                )
                continue
            lines.append(
                _tier_row(
                    f"`{m['model_name']}` as shipped: {m['decision_text']}",
                    m["as_shipped"][split],
                    names,
                )
            )
            lines.append(
                _tier_row(
                    f"`{m['model_name']}` matched: {m['matched_text']}", m["matched"][split], names
                )
            )
        lines.append("")
    lines += [
        "## Lesion tier (test videos with a polyp: CVC-ClinicDB test sequences)",
        "",
        "Latency: frames from the polyp's first frame to the first alarm (at 25 frames/s, "
        "CVC-ClinicDB's rate, divide by 25 for seconds); share: the polyp's frames alarmed.",
        "",
        "| model, decision | per sequence: latency (frames) / share alarmed | mean share |",
        "|---|---|---|",
    ]
    for m in doc["models"]:
        for which in ("as_shipped", "matched"):
            lt = m[which]["test"].get("lesions") or {}
            cells = ", ".join(
                f"{x['video']}: "
                f"{'never' if x.get('latency_frames') is None else x['latency_frames']} / "
                f"{_pct(x.get('alarmed_share'))}"
                for x in lt.get("lesions", [])
            )
            summ = lt.get("summary", {})
            label = "as shipped" if which == "as_shipped" else "matched"
            share = _pct(summ.get("mean_alarmed_share"))
            lines.append(f"| `{m['model_name']}` {label} | {cells} | {share} |")
    lines += [
        "",
        "## AFROC (test)",
        "",
        "![AFROC](afroc.png)",
        "",
        "Sensitivity against false-alarm rate over each model's decision score on the test "
        "frames (no persistence; the dot is the app's decision as shipped, persistence "
        "included; the dotted line is the 4.5% target).",
        "",
    ]
    return "\n".join(lines)


def run(args) -> int:
    from polypvision.errors import UserError
    from polypvision.fileio import write_text
    from polypvision.frametier import plot_afroc
    from polypvision.model.registry import shipped_models

    specs = pdata.specs_from(args.data, args.negatives)
    if not specs or not args.negatives or not args.data:
        raise UserError("alarms needs --data (polyp datasets) and --negatives (polyp-free) folders")
    sds = pdata.load_splits(specs, args.split_file, create=False)
    models = args.model or [str(p) for p in shipped_models()]
    out = Path(args.out_dir)
    docs, curves, marks = [], {}, {}
    for model in models:
        res, curve = measure_model(model, sds)
        docs.append(res)
        curves[res["model_name"]] = curve
        pooled = res["as_shipped"]["test"]["pooled"]
        marks[res["model_name"]] = (pooled["false_alarm_rate"], pooled["sensitivity"])
        print(
            f"{res['model_name']}: test polyp frames alarmed {_pct(pooled['sensitivity'])}, "
            f"polyp-free frames alarmed {_pct(pooled['false_alarm_rate'])} ({res['seconds']} s)",
            flush=True,
        )
    doc = {
        "command": "polypvision alarms "
        + " ".join(f"--data {d}" for d in args.data)
        + " "
        + " ".join(f"--negatives {d}" for d in args.negatives),
        "generated": time.strftime("%Y-%m-%d", time.gmtime()),
        "target_false_alarm": TARGET_FALSE_ALARM,
        "datasets": [sd.name for sd in sds],
        "kinds": {sd.name: ("negative" if sd.negative else "polyp") for sd in sds},
        "models": docs,
    }
    out.mkdir(parents=True, exist_ok=True)
    plot_afroc(curves, out / "afroc.png", marks=marks)
    write_text(out / "alarms.json", json.dumps(doc, indent=1) + "\n")
    write_text(out / "alarms.md", to_markdown(doc))
    print(f"wrote {out / 'alarms.md'}, {out / 'alarms.json'}, {out / 'afroc.png'}")
    return 0


def register(subparsers) -> None:
    a = subparsers.add_parser(
        "alarms",
        help="frame tier, lesion tier and AFROC of every shipped model (benchmarks/alarms.md)",
        description=(
            "Measure how often each model's alarm (the app's frame decision) fires on polyp and "
            "polyp-free frames of the validation and test splits, how fast it finds a polyp in "
            "video, and draw the AFROC; writes alarms.json, alarms.md and afroc.png."
        ),
    )
    a.add_argument("--data", action="append", default=None, help="polyp dataset folder; repeat")
    a.add_argument("--negatives", action="append", default=None, help="polyp-free folder; repeat")
    a.add_argument(
        "--model", action="append", default=None, help="ONNX model (default: every shipped one)"
    )
    a.add_argument("--split-file", default=None, help="split JSON (default: the shipped one)")
    a.add_argument("--out-dir", default="benchmarks", help="where to write (default benchmarks)")
    a.set_defaults(func=run)


def frame_tier_markdown(
    model: str | Path,
    specs: Sequence[pdata.DataSpec],
    split: str = "test",
    split_file: str | Path | None = None,
) -> str:
    """``polypvision evaluate``'s frame-tier section: the model's alarm (its contract's decision)
    on one side of the split, per dataset, with AUROC and the lesion tier."""
    from polypvision.model.session import Segmenter

    seg = Segmenter(model, provider="cpu")
    sds = pdata.load_splits(list(specs), split_file, create=False)
    recs = [r for sd in sds for r in score_frames(seg, sd, split)]
    spec = seg.contract.output.decision
    m = measure(recs, spec, lesions=True)
    text = spec.describe() if spec.threshold > 0 else "any outlined region (after the pixel gate)"
    lines = [f"## Frame tier ({split}): the app's alarm, {text}", ""]
    if split == "val" and cross_fitted(seg.contract):
        lines += [
            "In-sample: this model's gate was fitted on these validation frames (`gate "
            "--cross-fit`); its held-out validation figures are the out-of-fold ones in "
            "`benchmarks/alarms.md`.",
            "",
        ]
    lines += [
        "| dataset | frames | polyp frames alarmed | polyp-free frames alarmed |",
        "|---|---|---|---|",
    ]
    for name, d in m["per_dataset"].items():
        lines.append(
            f"| {name} | {d['frames']} | {_pct(d.get('sensitivity'))} | "
            f"{_pct(d.get('false_alarm'))} |"
        )
    auc = m["auroc"]
    lines += [
        "",
        f"AUROC of the frame score ({spec.score}): {auc:.3f}" if auc is not None else "",
    ]
    lt = (m.get("lesions") or {}).get("lesions") or []
    if lt:
        lines += [
            "",
            "Lesion tier (videos with a polyp): "
            + ", ".join(
                f"{x['video']}: first alarm after "
                f"{'never' if x['latency_frames'] is None else x['latency_frames']} frames, "
                f"{_pct(x['alarmed_share'])} of its frames alarmed"
                for x in lt
            ),
        ]
    return "\n".join(lines) + "\n"
