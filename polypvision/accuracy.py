"""``polypvision accuracy``: every shipped model on the test splits, beside the published figures.

One command writes ``benchmarks/accuracy.md`` (and the JSON it is made from): per dataset, a
row per shipped model measured here by :func:`polypvision.evaluate.evaluate_many` (the app's
own preprocessing and onnxruntime) and the published rows of U-Net, PraNet and Polyp-PVT,
quoted with their source, on the same test ids where the protocol is the same. The false-alarm
table on polyp-free sequences follows. README tables are generated from the same JSON
(:func:`readme_table`), so no figure is typed by hand.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polypvision import data as pdata
from polypvision.evaluate import SOD_COLUMNS, citation_for, evaluate_many
from polypvision.fileio import write_text

PRANET = (
    "Fan D.-P., Ji G.-P., Zhou T., Chen G., Fu H., Shen J., Shao L. (2020). PraNet: Parallel "
    "Reverse Attention Network for Polyp Segmentation. MICCAI 2020, LNCS, 263-273. "
    "arXiv:2006.11392."
)
POLYP_PVT = (
    "Dong B., Wang W., Fan D.-P., Li J., Fu H., Shao L. (2023). Polyp-PVT: Polyp Segmentation with "
    "Pyramid Vision Transformers. CAAI Artificial Intelligence Research 2. arXiv:2108.06932."
)
UNET = (
    "Ronneberger O., Fischer P., Brox T. (2015). U-Net. MICCAI 2015 (figures as reported by "
    "PraNet, Table 1)."
)

# Quoted, not measured here. The E-measure PraNet's Table 1 reports is the maximum over
# thresholds; Polyp-PVT's table reports the mean. Values checked against two or more independent
# copies of the tables where the originals were not readable (see benchmarks/README.md).
PUBLISHED: dict[str, list[dict[str, Any]]] = {
    "kvasir-seg": [
        {
            "model": "U-Net",
            "cite": "unet",
            "mdice": 0.818,
            "miou": 0.746,
            "wfm": 0.794,
            "sm": 0.858,
            "max_em": 0.893,
            "mae": 0.055,
        },
        {
            "model": "PraNet",
            "cite": "pranet",
            "mdice": 0.898,
            "miou": 0.840,
            "wfm": 0.885,
            "sm": 0.915,
            "max_em": 0.948,
            "mae": 0.030,
        },
        {
            "model": "Polyp-PVT",
            "cite": "polyp-pvt",
            "mdice": 0.917,
            "miou": 0.864,
            "wfm": 0.911,
            "sm": 0.925,
            "mean_em": 0.956,
            "mae": 0.023,
        },
    ],
    "cvc-clinicdb": [
        {
            "model": "U-Net",
            "cite": "unet",
            "mdice": 0.823,
            "miou": 0.755,
            "wfm": 0.811,
            "sm": 0.889,
            "max_em": 0.954,
            "mae": 0.019,
        },
        {
            "model": "PraNet",
            "cite": "pranet",
            "mdice": 0.899,
            "miou": 0.849,
            "wfm": 0.896,
            "sm": 0.936,
            "max_em": 0.979,
            "mae": 0.009,
        },
        {
            "model": "Polyp-PVT",
            "cite": "polyp-pvt",
            "mdice": 0.937,
            "miou": 0.889,
            "wfm": 0.936,
            "sm": 0.949,
            "mean_em": 0.985,
            "mae": 0.006,
        },
    ],
}
CITES = {"unet": UNET, "pranet": PRANET, "polyp-pvt": POLYP_PVT}
PROTOCOL = {
    "kvasir-seg": (
        "Same test ids as the published rows (the 100 of `test-pranet.txt`); they "
        "trained on 900 Kvasir-SEG + 550 CVC-ClinicDB frames at 352x352, we on 800 "
        "+ 352 (and polyp-free frames) at 256x256."
    ),
    "cvc-clinicdb": (
        "**Not the same test set.** The published rows test on 62 CVC-ClinicDB "
        "frames drawn at random, whose neighbours from the same videos were in "
        "their training set (a leaky split); ours are 4 whole held-out video "
        "sequences (75 frames) that share no sequence with training or "
        "validation. The rows are shown together because readers look for them, "
        "not because they compare."
    ),
}


def run_models(
    models: Sequence[str | Path],
    specs: Sequence[pdata.DataSpec],
    split_file: str | Path | None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Evaluate each model on the test side of every dataset;
    the document the tables are made from."""
    results = []
    for m in models:
        t0 = time.perf_counter()
        r = evaluate_many(
            m, specs, split="test", split_file=split_file, provider="cpu", threads=threads
        )
        r["wall_s"] = round(time.perf_counter() - t0, 1)
        for s in r["sets"]:
            s.pop("sweep", None)
            s.pop("per_image", None)
        r["model"] = Path(m).name
        results.append(r)
    return {
        "generated_by": "polypvision accuracy "
        + " ".join(
            [f"--data {_rel(s.path)}" for s in specs if s.kind == "polyp"]
            + [f"--negatives {_rel(s.path)}" for s in specs if s.kind == "negative"]
        ),
        "split_file": _rel(split_file or pdata.DEFAULT_SPLIT_FILE),
        "results": results,
    }


def _rel(path: str | Path) -> str:
    """A path as the command line would give it from here (relative,
    also above the working folder)."""
    import os

    return os.path.relpath(Path(path).resolve(), Path.cwd().resolve())


def _cells(values: dict[str, Any]) -> list[str]:
    return [
        f"{values[k]:.3f}" if isinstance(values.get(k), (int, float)) else ""
        for k, _ in SOD_COLUMNS
    ]


def to_markdown(doc: dict[str, Any]) -> str:
    lines = [
        "# Accuracy: shipped models beside published results",
        "",
        f"Generated by `{doc['generated_by']}` (split file `{doc['split_file']}`); do not edit "
        "by hand. **Ours** rows are measured here by the app's own preprocessing and "
        "onnxruntime (CPU) at the model's 256x256 input; *quoted* rows are copied from the "
        "papers cited below, not re-run.",
        "",
    ]
    names = (
        [s["dataset"] for s in doc["results"][0]["sets"] if s["kind"] == "polyp"]
        if doc["results"]
        else []
    )
    for ds in names:
        lines += [
            f"## {ds}",
            "",
            PROTOCOL.get(ds, ""),
            "",
            "| model | source | "
            + " | ".join(h for _, h in SOD_COLUMNS)
            + " | Dice @ threshold | precision | recall | polyp found |",
            "|---|---|" + "---|" * (len(SOD_COLUMNS) + 4),
        ]
        for r in doc["results"]:
            s = next(x for x in r["sets"] if x["dataset"] == ds)
            m = s["mean"]
            lines.append(
                f"| `{r['model_name']}` | **ours** | "
                + " | ".join(_cells(s.get("sod") or {}))
                + f" | {m['dice']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} | "
                f"{s['found']:.1%} |"
            )
        for p in PUBLISHED.get(ds, []):
            lines.append(
                f"| {p['model']} | *quoted* [{p['cite']}] | " + " | ".join(_cells(p)) + " | | | | |"
            )
        lines.append("")
    negs = [
        s for s in (doc["results"][0]["sets"] if doc["results"] else []) if s["kind"] == "negative"
    ]
    if negs:
        lines += [
            "## Polyp-free sequences (false alarms)",
            "",
            "Share of polyp-free frames on which a polyp is reported: by the raw model (any "
            "pixel over its threshold) and through the app (`annotate`'s per-frame `polyp`: "
            "default smoothing and the model's gate, each sequence played as a clip). No "
            "published figure exists for these frames.",
            "",
            "| model | dataset | frames | sequences | raw model | through the app |",
            "|---|---|---|---|---|---|",
        ]
        for r in doc["results"]:
            for s in (x for x in r["sets"] if x["kind"] == "negative"):
                lines.append(
                    f"| `{r['model_name']}` | {s['dataset']} | {s['images']} | "
                    f"{', '.join(s['sequences'])} | {s['flagged_raw']:.1%} | "
                    f"{s['flagged_app']:.1%} |"
                )
        lines.append("")
    lines += [
        "mDice and mIoU average over 256 thresholds, as the published evaluation code does; the "
        "E-measure PraNet's table reports is the maximum over thresholds, Polyp-PVT's the mean "
        "(we give both). Dice @ threshold is the binary mask the app draws. Polyp found: frames "
        "where the app reports a polyp that overlaps the true one.",
        "",
        "Quoted:",
        "",
    ]
    lines += [f"- [{k}] {v}" for k, v in CITES.items()]
    cites = [
        c
        for c in dict.fromkeys(
            citation_for(s["data"]) for r in doc["results"][:1] for s in r["sets"]
        )
        if c
    ]
    lines += ["", *cites, ""]
    return "\n".join(lines)


README_COLUMNS = (
    ("Kvasir-SEG test mDice", "kvasir-seg", "mdice"),
    ("CVC-ClinicDB test mDice", "cvc-clinicdb", "mdice"),
)


def readme_table(doc: dict[str, Any], fps: dict[str, float] | None = None) -> str:
    """The README's model table, made from the accuracy document (and the bench's model FPS)."""
    polyp = (
        [s["dataset"] for s in doc["results"][0]["sets"] if s["kind"] == "polyp"]
        if doc["results"]
        else []
    )
    neg = (
        [s["dataset"] for s in doc["results"][0]["sets"] if s["kind"] == "negative"]
        if doc["results"]
        else []
    )
    head = (
        ["model"]
        + [f"{d} mDice / Dice@t / found" for d in polyp]
        + [f"{d}: polyp reported" for d in neg]
    )
    if fps is not None:
        head.append("model FPS, this CPU")
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in doc["results"]:
        by = {s["dataset"]: s for s in r["sets"]}
        cells = [f"`{r['model_name']}`"]
        for d in polyp:
            s = by[d]
            cells.append(f"{s['sod']['mdice']:.3f} / {s['mean']['dice']:.3f} / {s['found']:.0%}")
        cells += [f"{by[d]['flagged_app']:.0%}" for d in neg]
        if fps is not None:
            v = fps.get(r["model_name"])
            cells.append(f"{v:.0f}" if v else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args) -> int:
    from polypvision.errors import UserError
    from polypvision.model.registry import shipped_models

    specs = pdata.specs_from(args.data, args.negatives)
    if not specs:
        raise UserError("accuracy needs --data folders (and --negatives for the false-alarm table)")
    models = [Path(m) for m in args.models] if args.models else shipped_models()
    if not models:
        raise UserError("no models to evaluate; pass --models or restore models/")
    doc = run_models(models, specs, args.split_file, args.threads)
    md = to_markdown(doc)
    for path, text in ((args.json, json.dumps(doc, indent=1) + "\n"), (args.output, md)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            write_text(path, text)
    print(md)
    return 0
