"""Give an exported model a measured frame decision, chosen on validation (issue 22).

Models exported before the frame decision existed alarm on any outlined region; this chooses
their decision by the same rule ``polypvision export`` applies to a new model
(:func:`polypvision.operating.choose_decision`: every polyp-free validation dataset at or under
4.5% false alarms, the highest mean validation sensitivity among score kinds and persistence
rules) and writes it into the model's contract, leaving the graph untouched. The file is
rewritten atomically; nothing on the test side is read.

Usage: python scripts/choose_decision.py MODEL.onnx [--data DIR ...] [--negatives DIR ...]
(defaults: the four datasets of ../shared/data and the shipped split).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DATA = "../shared/data"


def main(argv: list[str] | None = None) -> int:
    import onnx

    from polypvision import data as pdata
    from polypvision.errors import UserError
    from polypvision.model.session import Segmenter
    from polypvision.training.export import set_contract, with_decision, write_atomic

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="+")
    ap.add_argument("--data", action="append", default=None)
    ap.add_argument("--negatives", action="append", default=None)
    ap.add_argument("--split-file", default=None)
    a = ap.parse_args(argv)
    data = a.data or [f"{DATA}/Kvasir-SEG", f"{DATA}/CVC-ClinicDB"]
    negs = a.negatives or [f"{DATA}/PolypGen-negatives", f"{DATA}/CP-CHILD-nonpolyp"]
    if not all(Path(p).is_dir() for p in data + negs):
        print("choose_decision: a dataset folder is missing; pass --data", file=sys.stderr)
        return 2
    sds = pdata.load_splits(pdata.specs_from(data, negs), a.split_file, create=False)
    for model in a.model:
        try:
            final = with_decision(model, Segmenter(model, provider="cpu").contract, sds)
        except UserError as exc:
            print(f"choose_decision: {exc}", file=sys.stderr)
            return 2
        decision = final.output.decision
        proto = onnx.load(model)
        set_contract(proto, final)
        write_atomic(proto, model)
        v = decision.validation or {}
        print(
            f"{Path(model).name}: {decision.describe()}; validation polyp frames alarmed "
            f"{v.get('sensitivity', 0):.1%}, polyp-free at most {v.get('false_alarm_max', 0):.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
