"""The README's and the model cards' tables, generated, never typed (a maintainer tool of the
checkout: it reads README.md, models/README.md and benchmarks/*.json there).

Marked blocks in Markdown files::

    <!-- generated: NAME -->
    ...
    <!-- end generated: NAME -->

are rewritten from the data that holds the figures: each shipped model's contract (training
provenance, validation figures, threshold, gate), ``benchmarks/accuracy.json`` (test figures,
from ``polypvision accuracy``) and ``benchmarks/cpu.json`` (speed, from ``polypvision bench``).
``--check`` rewrites nothing and fails when a block is stale, which is what the test suite runs,
so a re-exported model or a new benchmark cannot leave an old figure behind.

    python scripts/tables.py          # rewrite the blocks of README.md and models/README.md
    python scripts/tables.py --check  # change nothing; exit 1 if a block is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from polypvision.fileio import write_text  # noqa: E402

BLOCK = re.compile(
    r"(<!-- generated: (?P<name>[\w.:-]+) -->\n)(?P<body>.*?)(<!-- end generated: (?P=name) -->)",
    re.S,
)
DEFAULT_FILES = ("README.md", "models/README.md")


class Context:
    """Everything the blocks are made from, read once."""

    def __init__(self, root: Path = ROOT) -> None:
        from polypvision.model.registry import read_manifest, shipped_models
        from polypvision.model.session import Segmenter

        self.root = root
        self.models = {p.stem: Segmenter(p, provider="cpu").contract for p in shipped_models()}
        self.files = {p.stem: p.name for p in shipped_models()}
        self.manifest = read_manifest()
        self.accuracy = _json(root / "benchmarks" / "accuracy.json")
        self.bench = _json(root / "benchmarks" / "cpu.json")
        self.alarms_doc = _json(root / "benchmarks" / "alarms.json")

    def alarms(self, model: str) -> dict[str, Any] | None:
        """The model's frame and lesion tiers from ``benchmarks/alarms.json``
        (``polypvision alarms``)."""
        for m in (self.alarms_doc or {}).get("models", []):
            if m.get("model_name") == model:
                return m
        return None

    def test(self, model: str) -> dict[str, Any] | None:
        for r in (self.accuracy or {}).get("results", []):
            if r.get("model_name") == model:
                return r
        return None

    def speed(self, model: str) -> dict[str, Any]:
        """Model FPS at batch 1, annotate FPS, and frames dropped live at 30 FPS,
        from the bench JSON."""
        out: dict[str, Any] = {}
        for row in (self.bench or {}).get("rows", []):
            if model not in row.get("detail", ""):
                continue
            extra = row.get("extra") or {}
            if row["stage"] == "model" and extra.get("batch") == 1:
                out["model_fps"] = row["fps"]
            elif row["stage"] == "annotate pipeline" and "veryfast" in row["detail"]:
                out["annotate_fps"] = row["fps"]
            elif row["stage"] == "live" and extra.get("paced_fps") == 30.0:
                out["live30_dropped"] = extra.get("dropped")
        return out


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _f(x: Any, fmt: str = ".3f") -> str:
    return format(x, fmt) if isinstance(x, (int, float)) else "n/a"


def _pct(x: Any) -> str:
    return _f(x, ".1%")


def _tier_cells(ctx: Context, m: dict[str, Any], split: str, which: str) -> list[str]:
    per = m[which][split]["per_dataset"]
    out = []
    for name in (ctx.alarms_doc or {}).get("datasets", []):
        d = per.get(name, {})
        out.append(_pct(d.get("sensitivity", d.get("false_alarm"))))
    return out


def alarms_table(ctx: Context) -> str:
    """Every shipped model's alarm on the test frames (as shipped and at the matched operating
    point), with AUROC and the lesion tier, from ``benchmarks/alarms.json``."""
    doc = ctx.alarms_doc
    if not doc:
        return "(no `benchmarks/alarms.json`: run `polypvision alarms`)"
    names = doc["datasets"]
    head = ["model", "decision"] + [
        f"{n} {'polyp frames alarmed' if doc['kinds'][n] == 'polyp' else 'false alarms'}"
        for n in names
    ]
    head += ["AUROC", "CVC-ClinicDB test videos: mean share alarmed / mean latency (frames)"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for stem in ctx.models:
        m = ctx.alarms(stem)
        if m is None:
            continue
        for which, label in (("as_shipped", "as shipped"), ("matched", "matched")):
            t = m[which]["test"]
            summ = (t.get("lesions") or {}).get("summary") or {}
            text = m["decision_text"] if which == "as_shipped" else m["matched_text"]
            cells = [f"`{stem}`", f"{label}: {text}", *_tier_cells(ctx, m, "test", which)]
            cells += [
                _f(t.get("auroc")),
                f"{_pct(summ.get('mean_alarmed_share'))} / "
                f"{_f(summ.get('mean_latency_frames'), '.1f')}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(
        lines
        + [
            "",
            "![AFROC of the shipped models on the test frames](benchmarks/afroc.png)",
        ]
    )


def _role(ctx: Context, stem: str) -> str:
    roles = [
        k.replace("_default", "")
        for k, v in ctx.manifest.items()
        if k.endswith("_default") and v == ctx.files[stem]
    ]
    return "default (" + ", ".join(r.upper() for r in roles) + ")" if roles else ""


def models_table(ctx: Context) -> str:
    """One row per shipped model: validation score, test figures per dataset,
    false alarms, speed."""
    test_sets: list[str] = []
    neg_sets: list[str] = []
    for stem in ctx.models:
        for s in (ctx.test(stem) or {}).get("sets", []):
            target = neg_sets if s["kind"] == "negative" else test_sets
            if s["dataset"] not in target:
                target.append(s["dataset"])
    head = (
        ["model", "role", "val score"]
        + [f"{d} test: mDice / Dice@t / found" for d in test_sets]
        + [f"{d} test: polyp reported" for d in neg_sets]
        + ["model FPS", "annotate FPS"]
    )
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for stem, c in sorted(
        ctx.models.items(), key=lambda kv: -float(kv[1].training.get("val_dice_at_0.5") or 0)
    ):
        by = {s["dataset"]: s for s in (ctx.test(stem) or {}).get("sets", [])}
        cells = [f"`{stem}`", _role(ctx, stem), _f(c.training.get("val_dice_at_0.5"))]
        for d in test_sets:
            s = by.get(d)
            cells.append(
                f"{_f(s['sod']['mdice'])} / {_f(s['mean']['dice'])} / {_f(s['found'], '.0%')}"
                if s
                else "n/a"
            )
        cells += [_f(by[d]["flagged_app"], ".0%") if d in by else "n/a" for d in neg_sets]
        sp = ctx.speed(stem)
        cells += [_f(sp.get("model_fps"), ".0f"), _f(sp.get("annotate_fps"), ".0f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def card(ctx: Context, stem: str) -> str:
    """A model's generated card: what it is, what it learned from,
    how it was chosen, what it scores."""
    c = ctx.models[stem]
    t = c.training
    rec = t.get("recipe") or {}
    data = t.get("data") or []
    data_txt = (
        ", ".join(
            f"`{d['path']}`" + (" (polyp-free)" if d.get("kind") == "negative" else "")
            for d in data
            if isinstance(d, dict)
        )
        or f"`{data}`"
    )
    gate = t.get("gate") or {}
    lines = [
        f"- File `models/{ctx.files[stem]}`; {c.architecture}"
        + (f", {t['parameters']:,} parameters" if t.get("parameters") else "")
        + f"; input {c.input.width}x{c.input.height} {c.input.color} {c.input.layout}, scaled (x "
        f"* {c.input.scale:.6g} - mean) / std with mean {list(c.input.mean)}, std "
        f"{list(c.input.std)}.",
        f"- Trained on {data_txt}, split `{t.get('split')}`; {t.get('epochs')} epochs run, kept "
        f"epoch {t.get('best_epoch')} ({t.get('weights') or 'n/a'} weights); wall time "
        f"{_dur(t.get('wall_time_s'))} on the development machine's 2 CPU cores.",
    ]
    if rec:
        lines.append(
            "- Recipe: "
            + ", ".join(f"{k} {v}" for k, v in rec.items() if v not in (None, False))
            + "."
        )
    per = t.get("val_per_dataset") or {}
    lines.append(
        f"- Validation score {_f(t.get('val_dice_at_0.5'))} (mean Dice at 0.5 over "
        + (", ".join(f"{k} {_f(v)}" for k, v in per.items()) or "the validation split")
        + ")."
    )
    if c.output.presence:  # docs/decisions.md: the decision is the frame-level gate
        gate_text = "no pixel gate (the frame decision on the presence output replaces it)"
    else:
        gate_text = f"gate: min area {c.output.min_area:g}, min peak {c.output.min_peak:g}" + (
            f" (on validation: polyp found {_f(gate.get('val_found'), '.1%')}, polyp-free frames "
            f"reporting a polyp {_f(gate.get('val_flagged'), '.1%')})"
            if gate.get("val_found") is not None
            else ""
        )
    lines.append(
        f"- Threshold {c.output.threshold:g}, chosen on the "
        f"{t.get('threshold_chosen_on', 'n/a')}; {gate_text}."
    )
    pg = t.get("presence_gate")
    if pg:
        grid = ", ".join(
            f"C {g['c']:g}: {_f(g['validation_sensitivity'], '.1%')}" for g in pg.get("c_grid", [])
        )
        lines.append(
            f"- Presence output: fitted by `polypvision gate` on the frozen `{pg['base_model']}` "
            f"(its mask unchanged): {pg['dimensions']} pooled features ("
            + "; ".join(f"{k}: {v}" for k, v in pg["features"].items())
            + f") into an L2 logistic regression, C {pg['c']:g} chosen on "
            + (
                f"out-of-fold validation, cross-fitted over {xf['folds']} folds "
                if (xf := pg.get("cross_fit"))
                else "validation "
            )
            + f"(validation polyp frames alarmed at 4.5% false alarms: {grid}); fitted on frames: "
            + ", ".join(
                f"{k} {v['train']}"
                + (f" + {sum(v['val_folds'])} validation" if v.get("val_folds") else "")
                + (
                    f" and {v['train_squares'] + v.get('val_squares', 0)} squares"
                    if v.get("train_squares")
                    else ""
                )
                for k, v in pg["frames"].items()
            )
            + " (each also mirrored"
            + (
                "; the squares: half clear of the polyp, half holding it, cut from the same "
                "polyp frames)."
                if pg.get("crops")
                else ")."
            )
        )
    r = ctx.test(stem)
    if r:
        for s in r["sets"]:
            if s["kind"] == "negative":
                where = f"frames of {', '.join(s['sequences'])}" if s["sequences"] else "images"
                lines.append(
                    f"- Test, {s['dataset']} ({s['images']} polyp-free {where}): a polyp "
                    f"reported on {_f(s['flagged_app'], '.1%')} of the frames through the app "
                    f"({_f(s['flagged_raw'], '.1%')} by the raw model)."
                )
            else:
                sod, m = s.get("sod") or {}, s["mean"]
                lines.append(
                    f"- Test, {s['dataset']} ({s['images']} frames): mDice "
                    f"{_f(sod.get('mdice'))}, mIoU {_f(sod.get('miou'))}, F^w "
                    f"{_f(sod.get('wfm'))}, S {_f(sod.get('sm'))}, mean E "
                    f"{_f(sod.get('mean_em'))}, MAE {_f(sod.get('mae'))}; at the threshold Dice "
                    f"{_f(m['dice'])}, precision {_f(m['precision'])}, recall {_f(m['recall'])}; "
                    f"polyp found on {_f(s['found'], '.1%')} of the frames. Lowest Dice: "
                    + ", ".join(
                        f"{w['frame']} ({_f(w['dice'], '.2f')})" for w in s.get("worst", [])[:4]
                    )
                    + "."
                )
    a = ctx.alarms(stem)
    if a:
        names = (ctx.alarms_doc or {}).get("datasets", [])
        kinds = (ctx.alarms_doc or {}).get("kinds", {})
        oof = a.get("validation_out_of_fold")
        for split, what in (
            ("val", "validation, out of fold" if oof else "validation"),
            ("test", "test"),
        ):
            cells = _tier_cells(ctx, a, split, "as_shipped")
            lines.append(
                f"- Alarm ({what}, `benchmarks/alarms.md`): decision {a['decision_text']}; "
                + ", ".join(
                    f"{n} {c} {'alarmed' if kinds.get(n) == 'polyp' else 'false alarms'}"
                    for n, c in zip(names, cells)
                )
                + f"; AUROC {_f(a['as_shipped'][split].get('auroc'))}."
            )
        summ = (a["as_shipped"]["test"].get("lesions") or {}).get("summary") or {}
        lines.append(
            f"- Lesion tier (CVC-ClinicDB test videos): {summ.get('n_detected', 'n/a')} of "
            f"{summ.get('n_lesions', 'n/a')} polyps alarmed, mean latency "
            f"{_f(summ.get('mean_latency_frames'), '.1f')} frames, mean share of a polyp's frames "
            f"alarmed {_pct(summ.get('mean_alarmed_share'))}. AFROC: `benchmarks/afroc.png`."
        )
    sp = ctx.speed(stem)
    if sp:
        lines.append(
            f"- Speed (`benchmarks/cpu.json`): model {_f(sp.get('model_fps'), '.1f')} FPS at "
            f"batch 1, `annotate` {_f(sp.get('annotate_fps'), '.1f')} FPS at 640x480, "
            f"{sp.get('live30_dropped', 'n/a')} frames dropped live at 30 FPS."
        )
    cmds = list(t.get("command") or [])
    run_dir = next((c_.split("--out ", 1)[1].split()[0] for c_ in cmds if "--out " in c_), None)
    if run_dir:  # what export stores comes from the run folder; the gate is chosen by export itself
        out = pg["base_file"] if pg else ctx.files[stem]
        cmds.append(f"polypvision export {run_dir} -o models/{out}")
    if pg and pg.get("command"):
        cmds.append(pg["command"])
    if cmds:
        lines += ["- Commands:", "", "  ```bash", *(f"  {x}" for x in cmds), "  ```"]
    return "\n".join(lines)


def _dur(s: Any) -> str:
    if not isinstance(s, (int, float)):
        return "n/a"
    h, rem = divmod(int(s), 3600)
    return f"{h} h {rem // 60:02d} min" if h else f"{rem // 60} min"


def targets_table(ctx: Context) -> str:
    """The issue's targets for the CPU default model,
    each beside the measured figure and met / not met."""
    stem = Path(ctx.manifest.get("cpu_default", "")).stem
    r = ctx.test(stem) or {"sets": []}
    by = {s["dataset"]: s for s in r["sets"]}
    sp = ctx.speed(stem)
    rows = []

    def add(what: str, value: float | None, ok: bool | None, shown: str) -> None:
        rows.append(
            f"| {what} | {shown if value is not None else 'n/a'} | "
            f"{'n/a' if ok is None else ('met' if ok else '**not met**')} |"
        )

    a = ctx.alarms(stem)
    per = a["as_shipped"]["test"]["per_dataset"] if a else {}
    for name, d in per.items():
        if "false_alarm" in d:
            add(
                f"polyp-free test frames ({name}): a polyp reported on <= 5%",
                d["false_alarm"],
                d["false_alarm"] <= 0.05,
                f"{d['false_alarm']:.1%} of {d['polyp_free_frames']} frames",
            )
    for name, d in per.items():
        if "sensitivity" in d:
            add(
                f"polyp test frames ({name}): a polyp reported on >= 95%",
                d["sensitivity"],
                d["sensitivity"] >= 0.95,
                f"{d['sensitivity']:.1%} of {d['polyp_frames']} frames",
            )
    kv, cvc = by.get("kvasir-seg"), by.get("cvc-clinicdb")
    if kv:
        add(
            "Kvasir-SEG test mean Dice >= 0.88 (the literature's mDice and the drawn mask's)",
            kv["sod"]["mdice"],
            kv["sod"]["mdice"] >= 0.88 and kv["mean"]["dice"] >= 0.88,
            f"mDice {kv['sod']['mdice']:.3f} / Dice@t {kv['mean']['dice']:.3f}",
        )
    if cvc:
        add(
            "CVC-ClinicDB test sequences mean Dice >= 0.89 (mDice and the drawn mask's)",
            cvc["sod"]["mdice"],
            cvc["sod"]["mdice"] >= 0.89 and cvc["mean"]["dice"] >= 0.89,
            f"mDice {cvc['sod']['mdice']:.3f} / Dice@t {cvc['mean']['dice']:.3f}",
        )
    fps, dropped = sp.get("annotate_fps"), sp.get("live30_dropped")
    add(
        ">= 30 FPS end to end in annotate at 640x480",
        fps,
        None if fps is None else fps >= 30.0,
        f"{fps:.1f} FPS" if fps else "n/a",
    )
    add(
        "0 frames dropped live at 30 FPS",
        dropped,
        None if dropped is None else dropped == 0,
        f"{dropped}",
    )
    return "\n".join(
        [
            f"Targets for the default model, `{stem}`:",
            "",
            "| target | measured | |",
            "|---|---|---|",
            *rows,
        ]
    )


def render(name: str, ctx: Context) -> str:
    if name == "models":
        return models_table(ctx)
    if name == "targets":
        return targets_table(ctx)
    if name == "alarms":
        return alarms_table(ctx)
    if name.startswith("card:"):
        stem = name.split(":", 1)[1]
        if stem not in ctx.models:
            return f"(model `{stem}` is not shipped)"
        return card(ctx, stem)
    raise KeyError(f"unknown generated block {name!r}")


def update(text: str, ctx: Context) -> str:
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("name"), ctx) + "\n" + m.group(4), text)


def run(args: argparse.Namespace) -> int:
    ctx = Context()
    stale = []
    for f in args.files or [ROOT / f for f in DEFAULT_FILES]:
        path = Path(f)
        old = path.read_text(encoding="utf-8")
        new = update(old, ctx)
        if new != old:
            stale.append(str(path))
            if not args.check:
                write_text(path, new)
    if args.check and stale:
        print(
            f"tables: generated tables are stale in {', '.join(stale)}; run 'python "
            "scripts/tables.py'",
            file=sys.stderr,
        )
        return 1
    print(("updated " + ", ".join(stale)) if stale else "tables are up to date")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=(
            "Rewrite the generated blocks (<!-- generated: NAME -->) of Markdown files "
            "from the shipped models' contracts, benchmarks/accuracy.json and "
            "benchmarks/cpu.json."
        )
    )
    ap.add_argument(
        "files", nargs="*", help="Markdown files (default: README.md and models/README.md)"
    )
    ap.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a block is stale"
    )
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
