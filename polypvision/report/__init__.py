"""A procedure's report: one self-contained HTML page a reviewer reads instead of the video.

Everything is inside the file (CSS, the timeline as SVG, thumbnails as base64 JPEG), so it can
be mailed, archived or opened offline. Its figures come from the annotate outputs alone (the
per-frame log, its sidecar and the annotated video) through :func:`figures` and
:mod:`polypvision.events`, the same functions the batch summary uses, so the page and
``summary.csv`` cannot disagree. It serves a single ``annotate`` output as well as a batch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from polypvision.events import EventSettings, PolypEvent, duration_s, find_events, read_log
from polypvision.report.page import render_index, render_report

__all__ = [
    "figures",
    "render_index",
    "render_report",
    "report_from_log",
    "report_is_current",
    "report_key",
    "write_report",
]

REPORT_FORMAT = 1


def figures(
    sidecar: Mapping[str, Any], records: Sequence[Mapping[str, Any]], events: Sequence[PolypEvent]
) -> dict[str, Any]:
    """The procedure's figures, as the summary row names them."""
    summary = sidecar.get("summary") or {}
    source = sidecar.get("source") or {}
    return {
        "frames_in": source.get("frame_count"),
        "frames_out": len(records),
        "unreadable_frames": int(summary.get("unreadable", 0)),
        "duration_s": duration_s(records, source.get("fps")),
        "frames_with_polyp": sum(1 for r in records if r.get("polyp")),
        "polyp_events": len(events),
    }


def report_key(sidecar: Mapping[str, Any], events: EventSettings, frames: int) -> str:
    """Changes whenever the page's content would: the outputs were redone,
    or the event definition changed."""
    doc = {
        "format": REPORT_FORMAT,
        "created": sidecar.get("created"),
        "frames": frames,
        "fingerprint": (sidecar.get("batch") or {}).get("fingerprint"),
        "events": events.to_dict(),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def report_is_current(path: Path, sidecar: Mapping[str, Any], events: EventSettings) -> bool:
    frames = int((sidecar.get("summary") or {}).get("frames", -1))
    try:
        with open(path, encoding="utf-8") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return (
        f'<meta name="polypvision-report" content="{report_key(sidecar, events, frames)}">' in head
    )


def write_report(
    path: Path,
    video: Path,
    sidecar: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    events: Sequence[PolypEvent],
    settings: EventSettings,
    title: str,
) -> Path:
    from polypvision.fileio import write_text
    from polypvision.report.thumbs import thumbnails

    thumbs = thumbnails(video, [e.largest_frame for e in events]) if events else {}
    html = render_report(
        title=title,
        sidecar=sidecar,
        records=records,
        events=events,
        settings=settings,
        figures=figures(sidecar, records, events),
        thumbs=thumbs,
        key=report_key(sidecar, settings, len(records)),
        video_name=video.name,
    )
    return write_text(path, html)


def report_from_log(
    log: Path,
    out: Path | None = None,
    video: Path | None = None,
    settings: EventSettings | None = None,
) -> Path:
    """The report of one ``annotate --log`` output (its video beside it unless given)."""
    from polypvision.errors import UserError
    from polypvision.events import event_settings_of

    sidecar_path = log.with_name(log.stem + ".meta.json")
    try:
        records = read_log(log)
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {log} and its sidecar {sidecar_path.name}: {exc}") from None
    settings = settings or event_settings_of(sidecar)
    video = video or log.with_suffix(".mp4")
    events = find_events(records, settings, (sidecar.get("source") or {}).get("fps"))
    out = out or log.with_name(log.stem + ".report.html")
    return write_report(
        out, video, sidecar, records, events, settings, title=str(sidecar.get("input", log.stem))
    )
