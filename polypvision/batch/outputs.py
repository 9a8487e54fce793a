"""One procedure's output files, and whether an earlier run already completed them.

"Complete" is checked, not assumed from a file being there: the sidecar parses and was made by
the same model and settings, the log has exactly the sidecar's frame count of well-formed lines,
the video's container holds that many frames and its first frame decodes, and the masks folder
(when asked for) has one PNG per frame. Annotate publishes by rename only when everything is
written, so a procedure cut short leaves only hidden temporary files, which
:func:`remove_partials` clears before the procedure is redone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polypvision.events import read_log


@dataclass(frozen=True)
class OutputPaths:
    stem: Path  # OUTPUT_DIR / relative path / name, without a suffix

    @property
    def video(self) -> Path:
        return self.stem.with_name(self.stem.name + ".mp4")

    @property
    def log(self) -> Path:
        return self.stem.with_name(self.stem.name + ".jsonl")

    @property
    def sidecar(self) -> Path:
        return self.stem.with_name(self.stem.name + ".meta.json")

    @property
    def masks(self) -> Path:
        return self.stem.with_name(self.stem.name + "_masks")

    @property
    def report(self) -> Path:
        return self.stem.with_name(self.stem.name + ".report.html")

    def finals(self) -> list[Path]:
        return [self.video, self.log, self.sidecar, self.masks, self.report]


@dataclass
class Completeness:
    complete: bool
    reason: str = ""
    sidecar: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)


def _video_frames(path: Path) -> int:
    """Frames the container holds, counted by demuxing (a cut file runs out early), after
    decoding the first frame (a file whose data is garbage fails there)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for _frame in container.decode(stream):
            break
        else:
            return 0
    count = 0
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                count += 1
    return count


def check_complete(paths: OutputPaths, fingerprint: str, masks: bool) -> Completeness:
    """Whether the procedure's annotate outputs are all there, whole, and made as asked now."""
    if not paths.sidecar.is_file():
        return Completeness(False, "not done yet")
    try:
        sidecar = json.loads(paths.sidecar.read_text(encoding="utf-8"))
        frames = int(sidecar["summary"]["frames"])
    except (OSError, ValueError, KeyError, TypeError):
        return Completeness(False, "sidecar unreadable")
    if (sidecar.get("batch") or {}).get("fingerprint") != fingerprint:
        return Completeness(False, "made with another model or other settings")
    try:
        records = read_log(paths.log)
    except (OSError, ValueError) as exc:
        return Completeness(False, f"log unreadable ({exc})")
    if len(records) != frames:
        return Completeness(False, f"log has {len(records)} of {frames} frames")
    try:
        in_video = _video_frames(paths.video)
    except Exception as exc:  # any decoder complaint means "not whole"
        return Completeness(False, f"video does not decode ({type(exc).__name__})")
    if in_video != frames:
        return Completeness(False, f"video has {in_video} of {frames} frames")
    if masks:
        try:
            n = sum(1 for e in os.scandir(paths.masks) if e.name.endswith(".png"))
        except OSError:
            n = -1
        if n != frames:
            return Completeness(False, "masks missing or incomplete")
    return Completeness(True, sidecar=sidecar, records=records)


def remove_partials(paths: OutputPaths) -> list[Path]:
    """Remove the hidden temporary outputs an interrupted attempt at this procedure left behind.

    Only names of the form annotate's writers and this package use for this procedure's own
    outputs (``.<final name>.<random>.partial…`` and ``.<final name>.old``) are touched.
    """
    return remove_leftovers(paths.stem.parent, [p.name for p in paths.finals()])


def remove_leftovers(folder: Path, names: Iterable[str]) -> list[Path]:
    """Remove the hidden temporary files (``.<name>.<random>.partial…``, ``.<name>.old``) that
    writes to ``folder/<name>`` left behind, for each of ``names``; for a caller that knows no
    one is writing them any more (their writer has ended)."""
    prefixes = tuple(f".{n}." for n in names)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        if not e.name.startswith(prefixes):
            continue
        if ".partial" not in e.name and not e.name.endswith(".old"):
            continue
        p = Path(e.path)
        with contextlib.suppress(OSError):
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed
