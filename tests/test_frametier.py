"""The frame and lesion tiers (polypvision.frametier) on small hand-made record lists."""

from __future__ import annotations

import pytest

pytest.importorskip("true_colon")  # needs Python >= 3.11 and the eval/test extra

from polypvision import frametier as ft  # noqa: E402
from polypvision.frametier import FrameRecord  # noqa: E402

W, H = 100, 80
POLYP = (40.0, 30.0, 20.0, 20.0)
ON_POLYP = (42.0, 32.0, 10.0, 10.0)
ELSEWHERE = (0.0, 0.0, 10.0, 10.0)  # touches no ground-truth box above


def rec(
    stem: str,
    score: float,
    *,
    polyp: bool,
    boxes: list[tuple[float, float, float, float]] | None = None,
    dataset: str = "kvasir-seg",
    video: str | None = None,
    index: int = 0,
) -> FrameRecord:
    if boxes is None:  # an outlined region where the polyp is, or nothing when score is 0
        boxes = [ON_POLYP if polyp else ELSEWHERE] if score > 0 else []
    return FrameRecord(
        dataset=dataset,
        stem=stem,
        video=video,
        index=index,
        gt_boxes=[POLYP] if polyp else [],
        pred_boxes=boxes,
        pred_scores=[score] * len(boxes),
        score=score,
        width=W,
        height=H,
    )


def hand_example() -> list[FrameRecord]:
    # Polyp frames 0.9, 0.6 (its region misses the polyp), 0.3, 0.0; polyp-free 0.8, 0.4, 0.2, 0.0.
    return [
        rec("p1", 0.9, polyp=True),
        rec("p2", 0.6, polyp=True, boxes=[ELSEWHERE]),
        rec("p3", 0.3, polyp=True),
        rec("p4", 0.0, polyp=True),
        rec("n1", 0.8, polyp=False, dataset="polypgen-negatives"),
        rec("n2", 0.4, polyp=False, dataset="polypgen-negatives"),
        rec("n3", 0.2, polyp=False, dataset="polypgen-negatives"),
        rec("n4", 0.0, polyp=False, dataset="polypgen-negatives"),
    ]


def test_to_coco_makes_true_colons_frame_score_the_records_score():
    records = hand_example()
    gt, preds = ft.to_coco(records)
    assert gt["categories"] == [{"id": 1, "name": "polyp"}]
    assert [im["id"] for im in gt["images"]] == list(range(1, 9))
    assert len({im["file_name"] for im in gt["images"]}) == 8
    assert len(gt["annotations"]) == 4 and all(ft.LESION_KEY not in a for a in gt["annotations"])
    assert [p["bbox"] for p in preds] == [[0.0, 0.0, W, H]] * 8
    pos, neg = ft.frame_scores(records)
    assert pos == [0.9, 0.6, 0.3, 0.0] and neg == [0.8, 0.4, 0.2, 0.0]
    # Localized: the polyp frame whose region misses the polyp scores 0 (TRUE-Colon's rule);
    # polyp-free frames are unchanged.
    pos_loc, neg_loc = ft.frame_scores(records, localized=True)
    assert pos_loc == [0.9, 0.0, 0.3, 0.0] and neg_loc == neg


def test_to_coco_rejects_what_would_skew_the_numbers():
    with pytest.raises(ValueError, match="twice"):
        ft.to_coco([rec("a", 0.5, polyp=True), rec("a", 0.1, polyp=False)])
    with pytest.raises(ValueError, match=r"not in \[0, 1\]"):
        ft.to_coco([rec("a", 1.5, polyp=True)])
    # The same stem in two datasets is two frames (CVC-ClinicDB and Kvasir both have "1").
    gt, _ = ft.to_coco([rec("1", 0.5, polyp=True), rec("1", 0.5, polyp=True, dataset="cvc")])
    assert len(gt["images"]) == 2


def test_frame_tier_on_a_hand_computed_example():
    t = ft.frame_tier(hand_example(), 0.5)
    assert (t["tp"], t["fn"], t["fp"], t["tn"]) == (2, 2, 1, 3)
    assert t["sensitivity"] == pytest.approx(0.5)
    assert t["false_alarm_rate"] == pytest.approx(0.25)
    assert t["specificity"] == pytest.approx(0.75)
    # Pairs won by a polyp frame: 0.9 beats 4, 0.6 beats 3, 0.3 beats 2, 0.0 ties 0.0 (half).
    assert t["auroc"] == pytest.approx(9.5 / 16)
    # The 0.6 frame alarms but outlines the wrong place: frame-level hit, not a localized one.
    assert t["localized_tp"] == 1 and t["localized_sensitivity"] == pytest.approx(0.25)
    assert (t["n_polyp_frames"], t["n_polyp_free_frames"]) == (4, 4)


def test_threshold_zero_is_the_apps_any_region_rule():
    t = ft.frame_tier(hand_example(), 0.0)  # a zero score never alarms, as in the app
    assert (t["tp"], t["fp"]) == (3, 3)


def test_auroc_edge_cases():
    assert ft.auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert ft.auroc([0.1], [0.9]) == 0.0
    assert ft.auroc([0.5, 0.5], [0.5]) == 0.5
    assert ft.auroc([], [0.1]) is None


def validation_set() -> list[FrameRecord]:
    negatives = [rec(f"n{i}", i / 100, polyp=False) for i in range(1, 101)]  # 0.01 ... 1.00
    positives = [rec(f"p{i}", s, polyp=True) for i, s in enumerate((0.5, 0.97, 0.98, 0.99))]
    return negatives + positives


def test_operating_point_meets_the_target_on_validation():
    op = ft.operating_point(validation_set())  # 4.5%: at most 4 of the 100 clean frames
    assert op["feasible"] and not op["never_alarms"]
    assert op["threshold"] == pytest.approx(0.97)
    assert op["false_alarm_rate"] == pytest.approx(0.04) and op["false_alarm_rate"] <= 0.045
    assert op["sensitivity"] == pytest.approx(0.75)
    # The frame tier at that threshold agrees with the search.
    t = ft.frame_tier(validation_set(), op["threshold"])
    assert t["false_alarm_rate"] == pytest.approx(op["false_alarm_rate"])
    assert t["sensitivity"] == pytest.approx(op["sensitivity"])


def test_operating_point_reports_what_cannot_be_met():
    few = [rec(f"n{i}", 0.1 * i, polyp=False) for i in range(1, 6)] + [rec("p", 0.9, polyp=True)]
    op = ft.operating_point(few)  # 5 clean frames: one false alarm is already 20%
    assert op["never_alarms"] and op["threshold"] > 1.0 and op["false_alarm_rate"] == 0.0
    only_polyps = ft.operating_point([rec("p", 0.9, polyp=True)])
    assert not only_polyps["feasible"] and only_polyps["n_polyp_free_frames"] == 0


def video(name: str, scores: list[float], first_polyp: int, dataset: str = "cvc-clinicdb"):
    return [
        rec(f"{name}-{i}", s, polyp=i >= first_polyp, dataset=dataset, video=name, index=i)
        for i, s in enumerate(scores)
    ]


def test_lesion_latency_on_a_constructed_sequence():
    # Video 10: polyp from frame 3; an alarm at frame 1 (polyp-free: a false alarm, not an early
    # find), then alarms at 5, 6 and 8. Video 11: polyp from frame 0, never alarmed.
    seq10 = video("10", [0.0, 0.9, 0.1, 0.2, 0.3, 0.8, 0.7, 0.1, 0.9, 0.2], first_polyp=3)
    seq11 = video("11", [0.1] * 5, first_polyp=0)
    stills = [rec("s1", 0.9, polyp=True)]  # no video: not a lesion
    out = ft.lesion_tier(seq10 + seq11 + stills, 0.5)
    by_video = {les["video"]: les for les in out["lesions"]}
    assert set(by_video) == {"10", "11"}
    a = by_video["10"]
    assert (a["first_polyp_frame"], a["first_alarm_frame"]) == (3, 5)
    assert a["latency_frames"] == 2 and a["latency_seconds"] == pytest.approx(2 / 25)
    assert a["n_polyp_frames"] == 7 and a["n_alarmed"] == 3
    assert a["alarmed_share"] == pytest.approx(3 / 7) and a["detected"]
    b = by_video["11"]
    assert not b["detected"] and b["latency_frames"] is None and b["alarmed_share"] == 0.0
    s = out["summary"]
    assert (s["n_lesions"], s["n_detected"], s["n_latency_lesions"]) == (2, 1, 1)
    assert s["mean_latency_frames"] == 2 and s["median_latency_frames"] == 2
    assert s["mean_alarmed_share"] == pytest.approx((3 / 7 + 0) / 2)
    assert ft.lesion_tier(seq10, 0.5, fps=10)["lesions"][0]["latency_seconds"] == 0.2


def test_lesion_tier_without_videos_is_empty():
    out = ft.lesion_tier([rec("s1", 0.9, polyp=True)], 0.5)
    assert out["lesions"] == [] and out["summary"]["n_lesions"] == 0
    assert out["summary"]["median_latency_frames"] is None


def test_afroc_is_monotone_and_its_x_is_the_frame_false_alarm_rate():
    records = validation_set() + [rec("p-miss", 0.9, polyp=True, boxes=[ELSEWHERE])]
    points = ft.afroc(records)
    assert len(points) == 23  # true_colon's shared grid: 0.001, 0.005, 0.01, 0.05 ... 1.0
    fars, sens = [p[0] for p in points], [p[1] for p in points]
    assert fars == sorted(fars) and sens == sorted(sens)
    assert all(0.0 <= v <= 1.0 for v in fars + sens)
    # At the lowest grid threshold every clean frame alarms; four of five polyps are outlined
    # (the fifth alarm points elsewhere, which the localized AFROC does not credit).
    assert points[-1] == (1.0, pytest.approx(4 / 5))
    assert ft.afroc(records, localized=False)[-1] == (1.0, 1.0)
    # The point at an operating threshold lies on the frame tier.
    t = ft.frame_tier(records, 0.95)
    [(far, _)] = ft.afroc(records, conf_grid=[0.95])
    assert far == pytest.approx(t["false_alarm_rate"]) and far == pytest.approx(6 / 100)
    assert ft.afroc(records, localized=False, conf_grid=[0.95])[0][1] == t["sensitivity"]
    with pytest.raises(ValueError, match="above 0"):
        ft.afroc(records, conf_grid=[0.0])


def test_plot_afroc_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    records = validation_set()
    curves = {"model A": ft.afroc(records), "model B": [(0.0, 0.0), (0.5, 0.6), (1.0, 1.0)]}
    mark = ft.afroc(records, conf_grid=[0.97])[0]
    out = ft.plot_afroc(curves, tmp_path / "plots" / "afroc.png", marks={"model A": mark})
    data = out.read_bytes()
    assert out == tmp_path / "plots" / "afroc.png"
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
