"""Throughput of ``polypvision batch`` (local engine) against ``annotate`` run clip after clip.

    python benchmarks/batch_bench.py [--clips 8] [--frames
    100] [--rounds 2] [--json benchmarks/batch.json]

Both sides annotate the same generated clips with the same model into fresh folders:

- sequential: ``polypvision annotate CLIP -o OUT --log LOG`` for each clip, one after the other,
  in this one process (its defaults: every core for the model);
- batch: ``polypvision batch CLIPS -o OUT`` with its defaults (workers and threads sized to the
  machine), timed end to end: starting the workers, the skip checks, the reports, the summary.

The two alternate (sequential, batch, batch, sequential, ...) so that a machine whose speed
drifts during the run penalises both alike; the ratio is of the summed frames per second.
Then one batch run with a single worker gives that worker's resident memory after each
procedure (summary.csv's worker_rss_mb): flat memory means no growth from procedure to
procedure. Nothing is asserted: the figures are printed and, with --json, written.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from polypvision import __version__
from polypvision.cli import main as pv
from polypvision.demo import write_synthetic_clip
from polypvision.model.registry import resolve_model


def make_clips(folder: Path, n: int, frames: int, size: tuple[int, int], fps: float) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_synthetic_clip(folder / f"clip{i:02d}.mp4", frames, *size, fps, seed=i)
        for i in range(n)
    ]


def run_sequential(clips: list[Path], model: Path, out: Path) -> float:
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    for c in clips:
        rc = pv(
            [
                "annotate",
                str(c),
                "-o",
                str(out / c.name),
                "--log",
                str(out / f"{c.stem}.jsonl"),
                "--model",
                str(model),
                "--quiet",
            ]
        )
        if rc != 0:
            raise SystemExit(f"annotate failed on {c}")
    return time.perf_counter() - t0


def run_batch(clips_dir: Path, model: Path, out: Path, *extra: str) -> float:
    t0 = time.perf_counter()
    rc = pv(["batch", str(clips_dir), "-o", str(out), "--model", str(model), "--quiet", *extra])
    if rc != 0:
        raise SystemExit(f"batch failed (exit {rc}); see {out / 'summary.csv'}")
    return time.perf_counter() - t0


def worker_memory(out: Path) -> list[float]:
    with open(out / "summary.csv", newline="") as fh:
        return [float(r["worker_rss_mb"]) for r in csv.DictReader(fh)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=100, help="frames per clip")
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--rounds", type=int, default=2, help="sequential/batch pairs, alternating")
    ap.add_argument("--model", type=Path, default=None, help="default: the shipped CPU default")
    ap.add_argument(
        "--compare",
        default="",
        help=(
            "also time these batch sizings each round, WORKERSxTHREADS, comma-separated (e.g. "
            "2x1,1x2)"
        ),
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    w, h = (int(x) for x in args.size.split("x"))
    model = resolve_model(args.model, "cpu")
    work = Path(tempfile.mkdtemp(prefix="pv-batch-bench-"))
    try:
        clips = make_clips(work / "clips", args.clips, args.frames, (w, h), 25.0)
        total = args.clips * args.frames
        seq, bat = [], []
        sizings = [c for c in args.compare.split(",") if c]
        extra: dict[str, list[float]] = {c: [] for c in sizings}
        for r in range(args.rounds):
            order = ["seq", "batch", *sizings]
            if r % 2:
                order.reverse()
            for kind in order:
                if kind == "seq":
                    seq.append(run_sequential(clips, model, work / f"seq{r}"))
                    took = seq[-1]
                elif kind == "batch":
                    bat.append(run_batch(work / "clips", model, work / f"batch{r}"))
                    took = bat[-1]
                else:
                    wk, th = kind.split("x")
                    extra[kind].append(
                        run_batch(
                            work / "clips",
                            model,
                            work / f"{kind}-{r}",
                            "--workers",
                            wk,
                            "--threads",
                            th,
                        )
                    )
                    took = extra[kind][-1]
                print(f"round {r + 1} {kind}: {total / took:.1f} frames/s", file=sys.stderr)
        run_batch(work / "clips", model, work / "memory", "--workers", "1")
        rss = worker_memory(work / "memory")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seq_fps, bat_fps = total * len(seq) / sum(seq), total * len(bat) / sum(bat)
    result = {
        "polypvision": __version__,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": model.name,
        "clips": args.clips,
        "frames_per_clip": args.frames,
        "size": args.size,
        "rounds": args.rounds,
        "sequential_s": [round(s, 2) for s in seq],
        "batch_s": [round(s, 2) for s in bat],
        "sequential_fps": round(seq_fps, 2),
        "batch_fps": round(bat_fps, 2),
        "ratio_batch_to_sequential": round(bat_fps / seq_fps, 3),
        "one_worker_rss_mb_after_each_procedure": [round(x, 1) for x in rss],
    }
    if sizings:
        result["sizings_fps"] = {k: [round(total / t, 1) for t in v] for k, v in extra.items()}
    print(
        f"sequential annotate: {seq_fps:.1f} frames/s; batch (local engine, defaults): "
        f"{bat_fps:.1f} frames/s; ratio {bat_fps / seq_fps:.3f}"
    )
    print(
        "one worker's resident memory after each procedure (MB): "
        + ", ".join(f"{x:.0f}" for x in rss)
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
