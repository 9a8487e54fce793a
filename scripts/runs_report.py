"""The validation figures of training runs, as one Markdown table (what each lever bought).

    python scripts/runs_report.py runs/mnv2_2c runs/lite0_2c ... > benchmarks/training-runs.md

Reads each run folder's ``state.json`` (written by ``polypvision train``): recipe, the epoch
kept, its validation score (mean Dice at 0.5 over the polyp datasets) with the per-dataset
figures, the raw model's false alarms on the polyp-free validation frames, SWA if tried, and the
training wall time. Nothing is typed by hand; run folders are not committed, this table is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _recipe(c: dict) -> str:
    bits = [c.get("arch", "?") + (f" base {c['base_filters']}" if c.get("base_filters") else "")]
    bits.append(f"loss {c.get('loss') or 'bce-dice'}")
    if c.get("deep_supervision"):
        bits.append("deep supervision")
    if c.get("background_crops"):
        bits.append("background crops")
    if c.get("presence"):
        bits.append("presence head")
    if c.get("hard_negatives"):
        bits.append(f"hard negatives mined with {Path(c['hard_negatives']).name}")
    negs = [d for d in c.get("data") or [] if isinstance(d, dict) and d.get("kind") == "negative"]
    if negs:
        names = ", ".join(Path(d["path"]).name for d in negs)
        bits.append(f"polyp-free {names} at {c.get('negative_share') or 0.15:.0%} of each batch")
    if c.get("teacher"):
        bits.append(f"distilled from {Path(c['teacher']).name} (weight {c.get('distill_weight')})")
    if c.get("crop_size"):
        bits.append(f"{c['crop_size']}px crops at the {c['input_size']} zoom")
    bits.append(f"{c.get('epochs')} epochs scheduled, {c.get('warmup_epochs')} warm-up")
    return ", ".join(bits)


def _dur(s: float) -> str:
    h, rem = divmod(int(s), 3600)
    return f"{h} h {rem // 60:02d} min" if h else f"{rem // 60} min"


def row(run: Path) -> str:
    st = json.loads((run / "state.json").read_text())
    c = st["config"]
    det = st.get("best_detail") or {}
    per = ", ".join(f"{k} {v:.4f}" for k, v in (det.get("per_dataset") or {}).items())
    neg = det.get("negative_frames_flagged")
    swa = st.get("swa")
    swa_txt = (
        (
            f"{swa['val_dice']:.4f} (epochs {swa['epochs'][0]}-{swa['epochs'][-1]}; "
            f"{'used' if swa['used'] else 'not used'})"
        )
        if swa
        else "not tried"
    )
    return (
        f"| `{run.name}` | {_recipe(c)} | {st.get('epoch')} | {st.get('best_epoch')} "
        f"({st.get('best_weights')}) | {float(st.get('best_dice', 0)):.4f} | {per} | "
        f"{'n/a' if neg is None else f'{neg:.1%}'} | {swa_txt} | "
        f"{_dur(float(st.get('wall_s', 0)))} |"
    )


LEVERS = {
    "arch": "encoder",
    "loss": "loss",
    "deep_supervision": "deep supervision",
    "background_crops": "background crops as negatives",
    "teacher": "distillation",
}
# Settings that may differ between two runs compared for one lever: schedules that stop early,
# the encoder's own input scaling, defaults of options added after a run (a distillation weight
# without a teacher does nothing).
_IGNORED = {
    "epochs",
    "patience",
    "threads",
    "data",
    "split_file",
    "cache_dir",
    "mean",
    "std",
    "distill_weight",
    "deep_supervision",
    "background_crops",
    "teacher",
}


def _lever_value(c: dict, key: str) -> str:
    v = c.get(key)
    if key == "loss":
        return v or "bce-dice"
    if key == "teacher":
        return Path(v).name if v else "none"
    if key in ("deep_supervision", "background_crops"):
        return "on" if v else "off"
    return str(v)


def levers(runs: list[Path]) -> list[str]:
    """One line per pair of runs that differ in exactly one lever (and in nothing else that
    matters), and one per weight average tried; the levers no run tried are named too."""
    states = {r: json.loads((r / "state.json").read_text()) for r in runs}
    lines, tried = [], set()
    for i, a in enumerate(runs):
        for b in runs[i + 1 :]:
            ca, cb = states[a]["config"], states[b]["config"]
            keys = {k for k in set(ca) | set(cb) if ca.get(k) != cb.get(k)} - _IGNORED
            diff = [k for k in LEVERS if _lever_value(ca, k) != _lever_value(cb, k)]
            if len(diff) != 1 or keys - set(diff):
                continue
            k = diff[0]
            tried.add(k)
            da, db = float(states[a]["best_dice"]), float(states[b]["best_dice"])
            lines.append(
                f"- {LEVERS[k]}: {_lever_value(ca, k)} (`{a.name}`, {da:.4f}) -> "
                f"{_lever_value(cb, k)} (`{b.name}`, {db:.4f}): {db - da:+.4f}"
            )
    for r, st in states.items():
        swa = st.get("swa")
        if swa:
            tried.add("swa")
            d = float(swa["val_dice"]) - float(st["best_dice"])
            lines.append(
                f"- weight averaging (SWA) of epochs {swa['epochs'][0]}-{swa['epochs'][-1]} "
                f"on `{r.name}`: {float(swa['val_dice']):.4f} against the best epoch's "
                f"{float(st['best_dice']):.4f}: {d:+.4f}"
            )
    for k, name in {**LEVERS, "swa": "weight averaging (SWA)"}.items():
        if k not in tried:
            lines.append(f"- {name}: no pair of these runs isolates it (not measured)")
    return lines


def main(argv: list[str]) -> int:
    runs = [Path(a) for a in argv if (Path(a) / "state.json").is_file()]
    if not runs:
        print("usage: python scripts/runs_report.py RUN_FOLDER [...]", file=sys.stderr)
        return 2
    print("# Training runs: validation figures\n")
    print(
        "Generated by `python scripts/runs_report.py "
        + " ".join(str(r) for r in runs)
        + "` from each run's `state.json`; validation split of `splits/two-centre.json` only (no "
        "test figure here). Score: mean over the polyp datasets of the validation mean Dice at "
        "0.5 (docs/decisions.md). Polyp-free: share of the validation polyp-free frames with "
        "any pixel over 0.5 (raw model, before the app's smoothing and gate).\n"
    )
    print(
        "| run | recipe | epochs run | kept epoch | val score | per dataset | polyp-free flagged "
        "(raw) | SWA | wall time |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(row(r))
    print("\n## What each lever bought (validation score, run against run)\n")
    print("\n".join(levers(runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
