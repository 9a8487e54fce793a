"""The frame decision: contract round trip, persistence, the app's processor, and the operating
point chosen on validation records (synthetic records: no data, no model training)."""

from __future__ import annotations

import numpy as np
import pytest
from toy_model import build_toy_model, contract_doc

from polypvision.decision import DecisionSpec, Persistence, alarms, frame_score
from polypvision.errors import ContractError
from polypvision.model.contract import ModelContract
from polypvision.model.session import Segmenter
from polypvision.operating import ScoredFrame, auroc, choose_decision, decide, lesion_tier, rates
from polypvision.pipeline.processor import FrameProcessor
from polypvision.types import Frame

DECISION = {"score": "presence", "threshold": 0.9, "window": 3, "min_hits": 2}


def _doc(decision=None, presence="presence"):
    doc = contract_doc(64)
    if presence:
        doc["output"]["presence"] = presence
    if decision is not None:
        doc["output"]["decision"] = decision
    return doc


def test_decision_round_trips_in_the_contract():
    c = ModelContract.from_dict(_doc(DECISION))
    assert c.output.decision == DecisionSpec("presence", 0.9, 3, 2)
    assert ModelContract.from_json(c.to_json()) == c


def test_a_contract_without_decision_keeps_the_old_rule():
    c = ModelContract.from_dict(contract_doc(64))
    assert c.output.decision == DecisionSpec() and c.output.presence is None
    assert "presence" not in c.to_dict()["output"]


@pytest.mark.parametrize(
    "decision, presence, needle",
    [
        ({"score": "vibes"}, "presence", "decision.score"),
        ({"score": "presence"}, None, "names no 'output.presence'"),
        ({"threshold": 1.5}, "presence", "threshold"),
        ({"window": 2, "min_hits": 3}, "presence", "min_hits"),
    ],
)
def test_bad_decisions_are_named(decision, presence, needle):
    with pytest.raises(ContractError, match=needle):
        ModelContract.from_dict(_doc(decision, presence))


def test_frame_score_is_zero_without_an_outline():
    assert frame_score("presence", 0.99, 0.0) == 0.0
    assert frame_score("presence", 0.7, 0.8) == pytest.approx(0.7)
    assert frame_score("presence*peak", 0.5, 0.8) == pytest.approx(0.4)
    assert frame_score("peak", None, 0.8) == pytest.approx(0.8)
    # a presence score without the presence value is a caller's bug, never a silent mask score
    with pytest.raises(ValueError, match="no presence value"):
        frame_score("presence", None, 0.8)


def test_region_peak_is_the_highest_outlined_value():
    from polypvision.decision import region_peak

    prob = np.zeros((8, 8), np.float32)
    prob[1, 1], prob[5, 5] = 0.9, 0.6
    mask = np.zeros((8, 8), np.uint8)
    assert region_peak(prob, mask) == 0.0
    mask[4:7, 4:7] = 1
    assert region_peak(prob, mask) == pytest.approx(0.6)  # 0.9 lies outside the outline


def test_persistence_needs_hits_in_the_window_and_judges_a_still_on_itself():
    p = Persistence(3, 2)
    assert p.update(True)  # the first frame of a stream: 1 of 1 seen
    p.reset()
    got = [p.update(h) for h in (False, False, False, True, True, False, True, False)]
    # after 3 frames a hit needs a second hit within the last 3
    assert got == [False, False, False, False, True, False, True, False]
    assert list(alarms(np.array([0.1, 0.1, 0.1, 0.95, 0.95]), 0.9, 3, 2)) == [
        False,
        False,
        False,
        False,
        True,
    ]


def _frame(i, red):
    img = np.full((48, 64, 3), 128, np.uint8)
    if red:
        img[10:30, 10:30] = (0, 0, 230)  # BGR red square
    return Frame(index=i, image=img, t_capture=0.0, pts_s=i / 25)


def test_processor_outlines_only_frames_the_decision_alarms_on(tmp_path):
    model = build_toy_model(tmp_path / "m.onnx", contract=_doc(DECISION), presence=True)
    seg = Segmenter(model, "cpu")
    proc = FrameProcessor(seg)
    proc.persistence.update(False)  # a stream that has run a while: no start-up shortcut
    proc.persistence.update(False)
    proc.persistence.update(False)
    reds = [True, False, True, True]
    res = proc.process([_frame(i, r) for i, r in enumerate(reds)])
    present = [r.detection.present for r in res]
    assert present == [False, False, True, True]
    assert res[0].mask.max() == 0 and res[2].mask.max() == 255
    assert res[0].detection.score > 0.9  # scored, yet not alarmed: one hit is not persistent
    proc.reset()
    assert proc.process([_frame(0, True)])[0].detection.present  # a still judged on itself


def test_a_model_without_presence_alarms_on_any_outline(tmp_path):
    seg = Segmenter(build_toy_model(tmp_path / "m.onnx"), "cpu")
    res = FrameProcessor(seg).process([_frame(0, True), _frame(1, False)])
    assert [r.detection.present for r in res] == [True, False]


def _records():
    """Polyp stills score high, polyp-free frames mostly low; one polyp-free sequence has a
    flickering high frame every third frame; one polyp video starts late."""
    recs = []
    for i in range(40):  # polyp stills
        recs.append(ScoredFrame("pos", f"p{i}", f"p{i}", 0, True, 0.5 + i / 80, 0.9, 10, 10))
    for i in range(30):  # a polyp-free sequence with a flicker
        pres = 0.95 if i % 3 == 0 else 0.1
        recs.append(ScoredFrame("neg", f"n{i}", "seqA", i, False, pres, 0.9, 10, 10))
    for i in range(10):  # a polyp video: the polyp is found from frame 3 on
        pres = 0.97 if i >= 3 else 0.2
        recs.append(ScoredFrame("vid", f"v{i}", "seqV", i, True, pres, 0.9, 10, 10))
    return recs


def test_operating_point_meets_the_target_and_persistence_is_chosen_when_it_pays():
    recs = _records()
    spec, table = choose_decision(recs, target=0.045)
    r = rates(recs, decide(recs, spec))
    assert r["false_alarm_max"] <= 0.045
    # without persistence the flicker (0.95) forces the threshold above it; with it, it need not
    no_persist = next(t for t in table if t["window"] == 1 and t["score"] == "presence")
    assert no_persist["threshold"] > 0.95
    assert spec.window > 1 and spec.threshold <= 0.95
    assert r["sensitivity"] > no_persist["sensitivity"]
    assert spec.validation["false_alarm_max"] == r["false_alarm_max"]


def test_auroc_and_lesion_latency():
    recs = _records()
    a = auroc(recs, "presence")
    assert 0.5 < a < 1.0
    lesions = lesion_tier(recs, decide(recs, DecisionSpec("presence", 0.96, 1, 1)))
    (vid,) = [x for x in lesions if x["video"] == "seqV"]
    assert vid["latency_frames"] == 3 and vid["share_alarmed"] == pytest.approx(0.7)


def test_demo_verdict_counts_the_polyp_free_stretch_against_the_generators_truth():
    from polypvision.demo import demo_verdict

    line = demo_verdict(list(range(0, 250)), 250)  # alarmed everywhere
    assert "in view on 200 frames and a polyp was reported on 200" in line
    assert "frames 200-249 show no polyp and a polyp was reported on 50 of those 50" in line
    line = demo_verdict(list(range(0, 100)), 250)  # only half the polyp, none of the free stretch
    assert "reported on 100 of them" in line and "reported on 0 of those 50" in line
