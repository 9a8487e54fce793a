"""Run-to-run spread of `polypvision bench` JSON files: one row per run, key figures per model.

The development machine is a shared 2-core VM whose speed drifts by tens of percent between
runs minutes apart; a single table hides that. Usage:

    python benchmarks/bench_spread.py benchmarks/history/*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _find(rows: list[dict], stage: str, *needles: str) -> dict | None:
    for r in rows:
        if r["stage"] == stage and all(n in r["detail"] for n in needles):
            return r
    return None


def main(paths: list[str]) -> int:
    if not paths:
        print("usage: python benchmarks/bench_spread.py BENCH.json [...]", file=sys.stderr)
        return 2
    runs = [json.loads(Path(p).read_text()) for p in sorted(paths)]
    models: list[str] = []
    for run in runs:
        for r in run["rows"]:
            if r["stage"] == "model":
                name = r["detail"].split(",")[0]
                if name not in models:
                    models.append(name)
    head = ["run (UTC, end)"]
    for m in models:
        short = m.replace("polypvision-", "")
        head += [
            f"{short} model b1",
            f"{short} annotate (veryfast / ultrafast)",
            f"{short} live 30 fps p95 ms (dropped)",
        ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for run in runs:
        cells = [run["machine"]["date"]]
        for m in models:
            mb = _find(run["rows"], "model", m + ",", "batch 1")
            vf = _find(run["rows"], "annotate pipeline", m + ",", "veryfast")
            uf = _find(run["rows"], "annotate pipeline", m + ",", "ultrafast")
            lv = _find(run["rows"], "live", m + ",", "30 fps")
            cells.append(f"{mb['fps']:.1f}" if mb else "n/a")
            cells.append(f"{vf['fps']:.1f} / {uf['fps']:.1f}" if vf and uf else "n/a")
            cells.append(
                f"{lv['extra']['latency_p95_ms']:.1f} ({lv['extra']['dropped']})" if lv else "n/a"
            )
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
