"""Extend splits/two-centre.json with the polyp-free material of 2026-12 (issue 22).

PolypGen-negatives grew from 5 to 12 sequences. The assignment of the five earlier sequences
(train seq4/5/7, validation seq6, test seq3) is kept as it was; the new sequences are placed by
hand by what they show (docs/decisions.md, "Polyp-free material"), so that validation holds the
kinds of frame the shipped default fails on (stool, ScopeGuide insets, blur) and test holds
other sequences of those kinds:

- train: seq8 (1080p, inset, clean mucosa), seq17 (blur, out-of-focus close-ups)
- validation: seq2 + seq12 (one video under two names: stool), seq10 (inset), seq13 (blur)
- test: seq9 (instruments, inset)

CP-CHILD-nonpolyp (no sequences) gets a seeded 60/20/20 split with near-duplicates kept on one
side (:func:`polypvision.data.make_split`).

Usage: python scripts/extend_split.py [--data ../shared/data] [--split splits/two-centre.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from polypvision import data as pdata

NEW_SEQUENCES = {
    "train": ["seq8", "seq17"],
    "val": ["seq2", "seq12", "seq10", "seq13"],
    "test": ["seq9"],
}
SAME_VIDEO = [["seq2", "seq12"]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--split", default="splits/two-centre.json")
    a = ap.parse_args(argv)
    root = Path(a.data)
    pg, cp = root / "PolypGen-negatives", root / "CP-CHILD-nonpolyp"
    if not pg.is_dir() or not cp.is_dir():
        print(f"extend_split: {pg} or {cp} is missing; pass --data", file=sys.stderr)
        return 2
    path = Path(a.split)
    doc = json.loads(path.read_text())
    ds = pdata.discover(pg, negative=True)
    part = doc["datasets"]["polypgen-negatives"]
    seqs = {k: list(part["sequences"][k]) for k in pdata.SPLIT_NAMES}
    for k, extra in NEW_SEQUENCES.items():
        seqs[k] = sorted(set(seqs[k]) | set(extra), key=pdata.natural_key)
    side_of = {s: k for k, v in seqs.items() for s in v}
    missing = {str(s.sequence) for s in ds.samples} - set(side_of)
    if missing:
        print(f"extend_split: sequences {sorted(missing)} have no side", file=sys.stderr)
        return 2
    stems = {k: [] for k in pdata.SPLIT_NAMES}
    for s in ds.samples:
        stems[side_of[str(s.sequence)]].append(s.stem)
    split = pdata.Split(
        ds.name,
        int(part["seed"]),
        False,
        *(tuple(sorted(stems[k], key=pdata.natural_key)) for k in pdata.SPLIT_NAMES),
        sequences={k: tuple(v) for k, v in seqs.items()},
        method=(
            "whole sequences (seq2 and seq12, one video, on one side); seq3-7 as before, the "
            "others placed by what they show (scripts/extend_split.py, docs/decisions.md)"
        ),
    )
    pdata.save_split(split, path, multi=True)
    doc = json.loads(path.read_text())
    doc["datasets"]["polypgen-negatives"]["same_video"] = SAME_VIDEO
    path.write_text(json.dumps(doc, indent=1) + "\n")
    cds = pdata.discover(cp, negative=True)
    pdata.save_split(pdata.make_split(cds, seed=0), path, multi=True)
    for name in ("polypgen-negatives", cds.name):
        p = json.loads(path.read_text())["datasets"][name]
        print(name, p["counts"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
