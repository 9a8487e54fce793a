"""Polyp events: what "3 polyp events" means, defined once for the report, the summary and the app.

The per-frame log says, frame by frame, whether a polyp is outlined. A reader of an archive
wants something coarser: how many times did a polyp come into view, when, for how long. An
event is a run of frames with a detection, where runs separated by a short gap (the model
losing the polyp for a moment behind a fold or in a blur) are bridged into one, and runs that
stay shorter than a minimum duration (a flicker on a bubble or a specular highlight) are
dropped. Both thresholds are settings, written to the sidecar beside the log, so a count can
always be traced back to the definition that produced it.

Times come from the log's own timestamps (``t``), so variable frame rates and frame folders
played at a chosen rate are handled alike. A frame "lasts" one frame period: the median step
between consecutive timestamps.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from polypvision.errors import UserError

_EPS_S = 1e-9  # float slack when comparing durations built from timestamps


@dataclass(frozen=True)
class EventSettings:
    """The two thresholds of the event definition (seconds of media time)."""

    min_duration_s: float = 1.0  # shorter runs are flicker, not a polyp in view
    max_gap_s: float = 0.5  # runs closer than this are one event

    def validated(self) -> EventSettings:
        for name, value in (("min_duration_s", self.min_duration_s), ("max_gap_s", self.max_gap_s)):
            if not math.isfinite(value) or value < 0:
                raise UserError(f"event {name} must be a non-negative number of seconds, got {value}")
        return self

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> EventSettings:
        d = d or {}
        base = cls()
        return cls(float(d.get("min_duration_s", base.min_duration_s)),
                   float(d.get("max_gap_s", base.max_gap_s))).validated()


@dataclass(frozen=True)
class PolypEvent:
    """One polyp in view. Frames are log positions (0-based, in output order), inclusive."""

    number: int  # 1-based, in time order
    start_frame: int
    end_frame: int  # the last frame with a detection
    start_s: float  # timestamp of the first frame with a detection
    end_s: float  # timestamp of the last one plus one frame period
    frames_with_polyp: int  # bridged gaps are not counted
    peak: float  # highest peak probability over its frames with a detection
    largest_area: float  # largest outlined fraction of the frame
    largest_frame: int  # the frame with the largest area (the earliest on a tie)
    largest_t: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "duration_s": self.duration_s}


def frame_period_s(records: Sequence[Mapping[str, Any]], fps: float | None = None) -> float:
    """The media time one frame stands for: the median timestamp step, else 1 / fps."""
    steps = [b["t"] - a["t"] for a, b in zip(records, records[1:]) if b["t"] > a["t"]]
    if steps:
        return float(statistics.median(steps))
    if fps and fps > 0:
        return 1.0 / fps
    return 0.0


def duration_s(records: Sequence[Mapping[str, Any]], fps: float | None = None) -> float:
    """Media duration of a log: from its first timestamp to the end of its last frame."""
    if not records:
        return 0.0
    return float(records[-1]["t"] - records[0]["t"] + frame_period_s(records, fps))


def _runs(records: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive log positions with a detection, as (first, last)."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, r in enumerate(records):
        if r.get("polyp") and start is None:
            start = i
        elif not r.get("polyp") and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(records) - 1))
    return runs


def find_events(records: Sequence[Mapping[str, Any]], settings: EventSettings | None = None,
                fps: float | None = None) -> list[PolypEvent]:
    """The polyp events of a per-frame log (dicts with ``t``, ``polyp``, ``peak``, ``area``)."""
    settings = (settings or EventSettings()).validated()
    period = frame_period_s(records, fps)
    merged: list[list[int]] = []
    for first, last in _runs(records):
        if merged:
            prev_end_s = records[merged[-1][1]]["t"] + period
            if records[first]["t"] - prev_end_s <= settings.max_gap_s + _EPS_S:
                merged[-1][1] = last
                continue
        merged.append([first, last])
    events: list[PolypEvent] = []
    for first, last in merged:
        start_s, end_s = float(records[first]["t"]), float(records[last]["t"] + period)
        if end_s - start_s + _EPS_S < settings.min_duration_s:
            continue
        hits = [i for i in range(first, last + 1) if records[i].get("polyp")]
        largest = max(hits, key=lambda i: (records[i].get("area", 0.0), -i))
        events.append(PolypEvent(
            number=len(events) + 1, start_frame=first, end_frame=last, start_s=start_s, end_s=end_s,
            frames_with_polyp=len(hits), peak=max(float(records[i].get("peak", 0.0)) for i in hits),
            largest_area=float(records[largest].get("area", 0.0)), largest_frame=largest,
            largest_t=float(records[largest]["t"])))
    return events


def read_log(path: Path) -> list[dict[str, Any]]:
    """The per-frame records of a detection log (JSON lines). Raises ValueError if damaged."""
    records = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{path} line {n} is not JSON (cut short?)") from None
            if not isinstance(rec, dict) or "t" not in rec or "polyp" not in rec:
                raise ValueError(f"{path} line {n} is not a detection record")
            records.append(rec)
    return records


def event_settings_of(sidecar: Mapping[str, Any]) -> EventSettings:
    """The event definition recorded in a log's sidecar (the defaults when it has none)."""
    return EventSettings.from_dict((sidecar.get("settings") or {}).get("events"))


def count_events(records: Iterable[Mapping[str, Any]], settings: EventSettings | None = None) -> int:
    return len(find_events(list(records), settings))
