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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

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
                raise UserError(
                    f"event {name} must be a non-negative number of seconds, got {value}"
                )
        return self

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> EventSettings:
        d = d or {}
        base = cls()
        return cls(
            float(d.get("min_duration_s", base.min_duration_s)),
            float(d.get("max_gap_s", base.max_gap_s)),
        ).validated()


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
    # highest frame-decision score (what the alarm rests on: the presence output of a model
    # that has one); logs written before the decision existed have none: their peak stands in
    score: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "duration_s": self.duration_s}


def frame_period_s(records: Sequence[Mapping[str, Any]], fps: float | None = None) -> float:
    """The media time one frame stands for: the median timestamp step, else 1 / fps."""
    return _period(np.asarray([r["t"] for r in records], np.float64), fps)


def _period(t: np.ndarray, fps: float | None) -> float:
    steps = np.diff(t)
    steps = steps[steps > 0]
    if steps.size:
        return float(np.median(steps))
    if fps and fps > 0:
        return 1.0 / fps
    return 0.0


def duration_s(records: Sequence[Mapping[str, Any]], fps: float | None = None) -> float:
    """Media duration of a log: from its first timestamp to the end of its last frame."""
    if not records:
        return 0.0
    return float(records[-1]["t"] - records[0]["t"] + frame_period_s(records, fps))


def _runs(hit: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of consecutive positions with a detection, as (first, last)."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], hit.astype(np.int8), [0]))))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def find_events(
    records: Sequence[Mapping[str, Any]],
    settings: EventSettings | None = None,
    fps: float | None = None,
) -> list[PolypEvent]:
    """The polyp events of a per-frame log (dicts with ``t``, ``polyp``, ``peak``, ``area`` and
    ``score``, the frame decision's score; a log without ``score`` scores by ``peak``)."""
    peak = np.asarray([float(r.get("peak", 0.0)) for r in records], np.float64)
    return find_events_in(
        np.asarray([r["t"] for r in records], np.float64),
        np.asarray([bool(r.get("polyp")) for r in records], bool),
        peak,
        np.asarray([float(r.get("area", 0.0)) for r in records], np.float64),
        settings,
        fps,
        score=np.asarray([float(r.get("score", r.get("peak", 0.0))) for r in records], np.float64),
    )


def find_events_in(
    t: np.ndarray,
    polyp: np.ndarray,
    peak: np.ndarray,
    area: np.ndarray,
    settings: EventSettings | None = None,
    fps: float | None = None,
    score: np.ndarray | None = None,
) -> list[PolypEvent]:
    """:func:`find_events` over per-frame arrays (the app's timeline keeps its verdicts so):
    timestamps, detection flags, peak probabilities and outlined areas, one entry per position,
    and the frame decision's scores (None: the peaks)."""
    settings = (settings or EventSettings()).validated()
    t, hit = np.asarray(t, np.float64), np.asarray(polyp, bool)
    score = peak if score is None else score
    period = _period(t, fps)
    merged: list[list[int]] = []
    for first, last in _runs(hit):
        if merged and t[first] - (t[merged[-1][1]] + period) <= settings.max_gap_s + _EPS_S:
            merged[-1][1] = last
            continue
        merged.append([first, last])
    events: list[PolypEvent] = []
    for first, last in merged:
        start_s, end_s = float(t[first]), float(t[last] + period)
        if end_s - start_s + _EPS_S < settings.min_duration_s:
            continue
        hits = first + np.flatnonzero(hit[first : last + 1])
        largest = int(hits[int(np.argmax(area[hits]))])  # the earliest of equal largest areas
        events.append(
            PolypEvent(
                number=len(events) + 1,
                start_frame=first,
                end_frame=last,
                start_s=start_s,
                end_s=end_s,
                frames_with_polyp=int(hits.size),
                peak=float(np.max(peak[hits])),
                largest_area=float(area[largest]),
                largest_frame=largest,
                largest_t=float(t[largest]),
                score=float(np.max(score[hits])),
            )
        )
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


def count_events(
    records: Iterable[Mapping[str, Any]], settings: EventSettings | None = None
) -> int:
    return len(find_events(list(records), settings))
