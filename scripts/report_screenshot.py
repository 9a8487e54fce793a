"""Reproduce docs/batch-report.png: a batch report page, rendered by headless Chromium.

    python scripts/report_screenshot.py [--data ../shared/data] [--out docs/batch-report.png]

The "procedure" is a folder of frames built at run time in a temporary folder (no dataset image
enters the repository): four CVC-ClinicDB test sequences (polyps), each between stretches of
PolypGen polyp-free frames, all resized to 384x288 and played at 10 fps, so the report has
several events with quiet stretches between them. It goes through ``polypvision batch`` with the
shipped default model, and Chromium (``apt-get install chromium``) photographs the report.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

from polypvision.cli import main as pv
from polypvision.events import read_log
from polypvision.sources.frames import natural_key

SIZE = (384, 288)
# (kind, name): a PolypGen negative sequence or a CVC-ClinicDB sequence (all four test sequences).
PLAN = [
    ("neg", "seq3"),
    ("cvc", "16"),
    ("neg", "seq4"),
    ("cvc", "22"),
    ("neg", "seq5"),
    ("cvc", "24"),
    ("neg", "seq6"),
    ("cvc", "10"),
    ("neg", "seq7"),
]


def cvc_frames(data: Path, sequence: str) -> list[Path]:
    with open(data / "CVC-ClinicDB" / "sequences.csv", newline="") as fh:
        frames = sorted(int(r["frame"]) for r in csv.DictReader(fh) if r["sequence"] == sequence)
    return [data / "CVC-ClinicDB" / "images" / f"{n}.png" for n in frames]


def negative_frames(data: Path, sequence: str) -> list[Path]:
    folder = data / "PolypGen-negatives" / "images"
    return sorted(folder.glob(f"{sequence}_img*.jpg"), key=lambda p: natural_key(p.name))


def build(data: Path, folder: Path) -> list[tuple[str, str, int]]:
    """Write the frames; the stretches as (kind, name, frame count)."""
    folder.mkdir(parents=True)
    n, stretches = 0, []
    for kind, name in PLAN:
        sources = cvc_frames(data, name) if kind == "cvc" else negative_frames(data, name)
        for src in sources:
            img = cv2.imread(str(src))
            cv2.imwrite(
                str(folder / f"{n:04d}.png"), cv2.resize(img, SIZE, interpolation=cv2.INTER_AREA)
            )
            n += 1
        stretches.append((kind, name, len(sources)))
    return stretches


def detections_per_stretch(log: Path, stretches: list[tuple[str, str, int]]) -> None:
    """What the model outlined in each stretch (the README's caption quotes these)."""
    records = read_log(log)
    first = 0
    for kind, name, count in stretches:
        hits = sum(r["polyp"] for r in records[first : first + count])
        what = "CVC-ClinicDB sequence" if kind == "cvc" else "PolypGen polyp-free"
        print(
            f"frames {first}-{first + count - 1} ({what} {name}): a polyp outlined in {hits} of "
            f"{count}"
        )
        first += count


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    ap.add_argument("--out", type=Path, default=Path("docs/batch-report.png"))
    ap.add_argument(
        "--browser", default=shutil.which("chromium") or shutil.which("chromium-browser") or ""
    )
    args = ap.parse_args()
    if not args.browser:
        print("report_screenshot: no chromium found; apt-get install chromium", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="pv-report-shot-"))
    try:
        stretches = build(args.data, work / "archive" / "procedure-0001")
        rc = pv(["batch", str(work / "archive"), "-o", str(work / "out"), "--fps", "10", "--quiet"])
        if rc != 0:
            return rc
        report = work / "out" / "procedure-0001.report.html"
        subprocess.run(
            [
                args.browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1100,1500",
                f"--screenshot={args.out.resolve()}",
                report.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        print((work / "out" / "summary.csv").read_text(), end="")
        detections_per_stretch(work / "out" / "procedure-0001.jsonl", stretches)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
