"""Polyp events: the one definition the report, the summary and the app's timeline count by."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polypvision.errors import UserError
from polypvision.events import EventSettings, duration_s, find_events, frame_period_s


def log(
    flags: str,
    fps: float = 10.0,
    areas: dict[int, float] | None = None,
    peaks: dict[int, float] | None = None,
) -> list[dict]:
    """A log from a string: '#' a frame with a detection, '.' without."""
    areas, peaks = areas or {}, peaks or {}
    return [
        {
            "frame": i,
            "t": i / fps,
            "polyp": c == "#",
            "area": areas.get(i, 0.05 if c == "#" else 0.0),
            "peak": peaks.get(i, 0.9 if c == "#" else 0.1),
        }
        for i, c in enumerate(flags)
    ]


def spans(events):
    return [(e.start_frame, e.end_frame) for e in events]


def test_short_gaps_are_bridged_and_short_runs_dropped():
    # 0.2 s gap bridged (max 0.5 s); a 0.1 s blip dropped (min 0.3 s); a 0.6 s gap splits.
    recs = log("..#####..####......#......######")
    ev = find_events(recs, EventSettings(min_duration_s=0.3, max_gap_s=0.5))
    assert spans(ev) == [(2, 12), (26, 31)]
    assert ev[0].start_s == pytest.approx(0.2) and ev[0].end_s == pytest.approx(1.3)
    assert ev[0].duration_s == pytest.approx(1.1)
    assert ev[0].frames_with_polyp == 9
    assert [e.number for e in ev] == [1, 2]


def test_gap_exactly_at_the_limit_is_bridged():
    recs = log("##.....##")  # 5 frames without = 0.5 s
    assert spans(find_events(recs, EventSettings(0.0, 0.5))) == [(0, 8)]
    assert spans(find_events(recs, EventSettings(0.0, 0.49))) == [(0, 1), (7, 8)]


def test_duration_counts_the_last_frame_and_minimum_is_inclusive():
    recs = log("...###...")  # 3 frames = 0.3 s
    assert len(find_events(recs, EventSettings(0.3, 0.0))) == 1
    assert find_events(recs, EventSettings(0.31, 0.0)) == []


def test_peak_and_largest_area_over_the_detections_only():
    recs = log("##..##", areas={1: 0.2, 4: 0.3, 2: 0.9}, peaks={0: 0.7, 5: 0.95, 3: 0.99})
    (ev,) = find_events(recs, EventSettings(0.0, 0.5))
    assert ev.peak == pytest.approx(0.95)  # frame 3's 0.99 is no detection
    assert (
        ev.largest_area == pytest.approx(0.3)
        and ev.largest_frame == 4
        and ev.largest_t == pytest.approx(0.4)
    )


def test_score_is_the_alarms_own_and_an_old_log_scores_by_peak():
    recs = log("###.", peaks={0: 1.0, 1: 1.0, 2: 1.0})
    for r, score in zip(recs, (0.2, 0.6, 0.4, 0.9)):
        r["score"] = score  # a presence model: pixel peaks of 1.00, the alarm rests on presence
    (ev,) = find_events(recs, EventSettings(0.0, 0.5))
    assert ev.score == pytest.approx(0.6) and ev.peak == pytest.approx(1.0)
    for r in recs:
        del r["score"]  # written before the frame decision existed
    (ev,) = find_events(recs, EventSettings(0.0, 0.5))
    assert ev.score == pytest.approx(1.0)


def test_largest_area_tie_takes_the_earliest_frame():
    (ev,) = find_events(log("####", areas={1: 0.2, 3: 0.2}), EventSettings(0.0, 0.0))
    assert ev.largest_frame == 1


def test_empty_and_detection_free_logs():
    assert find_events([], EventSettings()) == []
    assert find_events(log("......"), EventSettings()) == []
    assert duration_s([]) == 0.0


def test_variable_frame_rate_uses_the_timestamps():
    recs = log("####")
    for r, t in zip(recs, (0.0, 0.04, 0.08, 0.2)):
        r["t"] = t
    assert frame_period_s(recs) == pytest.approx(0.04)
    (ev,) = find_events(recs, EventSettings(0.0, 0.5))
    assert ev.end_s == pytest.approx(0.24)


def test_single_frame_log_uses_the_frame_rate():
    assert duration_s(log("#"), fps=25.0) == pytest.approx(0.04)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_settings_refuse_nonsense(bad):
    with pytest.raises(UserError):
        EventSettings(min_duration_s=bad).validated()
    with pytest.raises(UserError):
        EventSettings(max_gap_s=bad).validated()


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="#.", max_size=80), st.floats(0, 2), st.floats(0, 2))
def test_events_are_ordered_disjoint_and_obey_both_thresholds(flags, min_s, gap_s):
    recs = log(flags)
    ev = find_events(recs, EventSettings(min_s, gap_s))
    for e in ev:
        assert recs[e.start_frame]["polyp"] and recs[e.end_frame]["polyp"]
        assert e.duration_s >= min_s - 1e-6
        assert e.frames_with_polyp == sum(r["polyp"] for r in recs[e.start_frame : e.end_frame + 1])
    for a, b in zip(ev, ev[1:]):
        assert b.start_s - a.end_s > gap_s - 1e-6
    # With nothing dropped, every detection lies in exactly one event.
    if min_s == 0:
        assert sum(e.frames_with_polyp for e in ev) == sum(r["polyp"] for r in recs)
