"""The frame decision measured: every frame of a split scored as the app scores it, the operating
point chosen on validation, and the alarm rates a user would see.

One pass per dataset runs the model and the app's own smoother (with the model's gate) clip by
clip, exactly as ``annotate`` plays a folder of frames or a video, and keeps per frame what every
decision needs: the model's frame-level presence (if any), the highest smoothed probability of
the outlined region, and that region's boxes. Any decision (:class:`DecisionSpec`: score kind,
threshold, persistence) is then a cheap replay over these records, so the operating point can be
searched on validation without running the model again, and the figures reported for a shipped
model are those of the decision in its contract, through :class:`~polypvision.decision.Persistence`
as the app runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from polypvision import data as pdata
from polypvision.decision import SCORES, DecisionSpec, alarms, frame_score, region_peak
from polypvision.errors import UserError

# TRUE-Colon's matched operating point: 4.5% of lesion-free frames alarmed
TARGET_FALSE_ALARM = 0.045
# (window, min_hits) tried on validation; (1, 1) is no persistence
PERSISTENCE_GRID = ((1, 1), (2, 2), (3, 2), (3, 3), (5, 3), (5, 4))


@dataclass
class ScoredFrame:
    """One frame as the app saw it, before the decision."""

    dataset: str
    stem: str
    clip: str  # the video sequence, or the stem for a still image (a clip of its own)
    order: int  # position in its clip
    polyp: bool  # ground truth: any polyp pixel
    presence: float | None
    region_peak: float  # highest smoothed probability of the outlined region, 0 if none
    width: int
    height: int
    gt_boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    peak_raw: float = 0.0  # the raw map's maximum (what a peak gate alone would see)


def _boxes(mask: np.ndarray, sx: float = 1.0, sy: float = 1.0) -> list[tuple[int, int, int, int]]:
    import cv2

    m = np.ascontiguousarray(mask.astype(np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    return [
        (
            int(stats[i, 0] * sx),
            int(stats[i, 1] * sy),
            max(1, int(stats[i, 2] * sx)),
            max(1, int(stats[i, 3] * sy)),
        )
        for i in range(1, n)
    ]


def score_frames(segmenter, sd: pdata.SplitData, split: str, batch: int = 8) -> list[ScoredFrame]:
    """Every frame of one side of ``sd`` through the model and the app's smoother, clip by clip
    (frames are decoded one clip at a time, so 1080p sequences do not all sit in memory)."""
    from polypvision.evaluate import _clips
    from polypvision.pipeline.processor import FrameProcessor

    samples = sd.samples(split)
    proc = FrameProcessor(segmenter)
    out: list[ScoredFrame] = []
    for clip in _clips(samples):
        proc.reset()
        pairs = [pdata.load_pair(samples[i]) for i in clip]
        frames = [p[0] for p in pairs]
        for start in range(0, len(frames), batch):
            chunk = frames[start : start + batch]
            probs, presence = segmenter.infer_small(chunk)
            for k, p in enumerate(probs):
                j = start + k
                s = samples[clip[j]]
                ema, m = proc.smoother.update(p)
                peak = region_peak(ema, m)
                h, w = frames[j].shape[:2]
                gt = pairs[j][1]
                out.append(
                    ScoredFrame(
                        dataset=sd.name,
                        stem=s.stem,
                        clip=str(s.sequence) if s.sequence is not None else s.stem,
                        order=j,
                        polyp=bool(gt.any()),
                        presence=None if presence is None else float(presence[k]),
                        region_peak=peak,
                        width=w,
                        height=h,
                        gt_boxes=_boxes(gt) if gt.any() else [],
                        boxes=_boxes(m, w / m.shape[1], h / m.shape[0]) if peak > 0 else [],
                        peak_raw=float(p.max()),
                    )
                )
    return out


def scores(records: Sequence[ScoredFrame], kind: str) -> np.ndarray:
    return np.array([frame_score(kind, r.presence, r.region_peak) for r in records], np.float64)


def _by_clip(records: Sequence[ScoredFrame]) -> list[list[int]]:
    clips: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(records):
        clips.setdefault((r.dataset, r.clip), []).append(i)
    return [sorted(v, key=lambda i: records[i].order) for v in clips.values()]


def decide(records: Sequence[ScoredFrame], spec: DecisionSpec) -> np.ndarray:
    """The app's alarm on every record under ``spec`` (persistence clip by clip)."""
    s = scores(records, spec.score)
    out = np.zeros(len(records), bool)
    for idx in _by_clip(records):
        out[idx] = alarms(s[idx], spec.threshold, spec.window, spec.min_hits)
    return out


def rates(records: Sequence[ScoredFrame], alarmed: np.ndarray) -> dict[str, Any]:
    """Per dataset: the share of its frames alarmed (sensitivity on polyp frames, false-alarm
    rate on polyp-free ones); and the summary each rule is judged on: the mean sensitivity over
    the polyp datasets and the highest false-alarm rate over the polyp-free ones."""
    per: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r.dataset for r in records):
        idx = [i for i, r in enumerate(records) if r.dataset == name]
        polyp = [i for i in idx if records[i].polyp]
        free = [i for i in idx if not records[i].polyp]
        d: dict[str, Any] = {"frames": len(idx)}
        if polyp:
            d["sensitivity"] = float(alarmed[polyp].mean())
            d["polyp_frames"] = len(polyp)
        if free:
            d["false_alarm"] = float(alarmed[free].mean())
            d["polyp_free_frames"] = len(free)
        per[name] = d
    sens = [d["sensitivity"] for d in per.values() if "sensitivity" in d]
    far = [d["false_alarm"] for d in per.values() if "false_alarm" in d]
    return {
        "per_dataset": per,
        "sensitivity": float(np.mean(sens)) if sens else None,
        "false_alarm_max": float(max(far)) if far else None,
        "false_alarm_mean": float(np.mean(far)) if far else None,
    }


def auroc(records: Sequence[ScoredFrame], kind: str) -> float | None:
    """Frame-level AUROC of a score kind, polyp frames against polyp-free ones (ties count half),
    before persistence."""
    s = scores(records, kind)
    pos = s[[r.polyp for r in records]]
    neg = s[[not r.polyp for r in records]]
    if not len(pos) or not len(neg):
        return None
    both = np.concatenate([pos, neg])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(len(both))
    sorted_s = both[order]
    i = 0
    while i < len(both):  # average ranks over ties
        j = i
        while j + 1 < len(both) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    r_pos = ranks[: len(pos)].sum()
    return float((r_pos - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg)))


def threshold_for(
    records: Sequence[ScoredFrame],
    kind: str,
    window: int,
    min_hits: int,
    target: float = TARGET_FALSE_ALARM,
) -> float:
    """The lowest threshold at which no polyp-free dataset is alarmed on more than ``target`` of
    its frames (the false-alarm rate only falls as the threshold rises, so a bisection over the
    scores that occur finds it)."""
    s = scores(records, kind)
    cands = np.unique(np.concatenate([[0.0], s, [1.0 + 1e-9]]))

    def ok(t: float) -> bool:
        spec = DecisionSpec(kind, float(t), window, min_hits)
        far = rates(records, decide(records, spec))["false_alarm_max"]
        return far is None or far <= target

    lo, hi = 0, len(cands) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(cands[mid]):
            hi = mid
        else:
            lo = mid + 1
    return float(min(cands[lo], 1.0))


def cross_fitted(contract) -> bool:
    """Whether the model's presence gate was fitted on validation frames too (``gate
    --cross-fit``): its validation figures are then the out-of-fold ones in its contract.

    Raises when the gate is cross-fitted but its decision is not the out-of-fold one (chosen
    again on validation, which that gate has seen): its validation figures would be in-sample
    under an out-of-fold label."""
    if not (contract.training.get("presence_gate") or {}).get("cross_fit"):
        return False
    decision = contract.output.decision
    if decision is None or "out of fold" not in (decision.chosen_on or ""):
        raise UserError(
            f"{contract.name}: its gate is cross-fitted on validation but its decision was not "
            "chosen out of fold, so its validation figures are in-sample; re-run "
            "`polypvision gate --cross-fit` to choose it"
        )
    return True


def choose_decision(
    records: Sequence[ScoredFrame], target: float = TARGET_FALSE_ALARM
) -> tuple[DecisionSpec, list[dict[str, Any]]]:
    """The decision for a model, on validation records (docs/decisions.md): for every score kind
    the model has and every persistence rule of :data:`PERSISTENCE_GRID`, the threshold that
    keeps every polyp-free validation dataset at or under ``target``; then the rule with the
    highest mean sensitivity over the polyp datasets; ties go to the shorter window, then to
    the earlier score kind. Returns the spec and every candidate's validation figures."""
    has_presence = all(r.presence is not None for r in records)
    kinds = [k for k in SCORES if has_presence or k == "peak"]
    table: list[dict[str, Any]] = []
    best: tuple[float, int, int, DecisionSpec, dict[str, Any]] | None = None
    for ki, kind in enumerate(kinds):
        for window, hits in PERSISTENCE_GRID:
            t = threshold_for(records, kind, window, hits, target)
            spec = DecisionSpec(kind, t, window, hits)
            r = rates(records, decide(records, spec))
            row = {
                "score": kind,
                "window": window,
                "min_hits": hits,
                "threshold": t,
                "sensitivity": r["sensitivity"],
                "false_alarm_max": r["false_alarm_max"],
                "per_dataset": r["per_dataset"],
            }
            table.append(row)
            key = (float(r["sensitivity"] or 0.0), -window, -ki)
            if best is None or key > best[:3]:
                best = (*key, spec, r)
    assert best is not None
    spec, r = best[3], best[4]
    chosen = replace(
        spec,
        target_false_alarm=target,
        chosen_on=(
            "validation split: every polyp-free dataset at or under the target; the highest "
            "mean sensitivity over the polyp datasets among score kinds and persistence rules"
        ),
        validation={
            "sensitivity": r["sensitivity"],
            "false_alarm_max": r["false_alarm_max"],
            "per_dataset": r["per_dataset"],
            "auroc": auroc(records, spec.score),
        },
    )
    return chosen, table


def lesion_tier(records: Sequence[ScoredFrame], alarmed: np.ndarray) -> list[dict[str, Any]]:
    """Per video with polyps (one polyp per CVC-ClinicDB sequence): frames from the polyp's first
    frame to the first alarm, and the share of its polyp frames alarmed."""
    out = []
    for idx in _by_clip(records):
        if len(idx) < 2 or not any(records[i].polyp for i in idx):
            continue
        pos = [k for k, i in enumerate(idx) if records[i].polyp]
        first = pos[0]
        hits = [k for k in pos if alarmed[idx[k]]]
        out.append(
            {
                "dataset": records[idx[0]].dataset,
                "video": records[idx[0]].clip,
                "polyp_frames": len(pos),
                "latency_frames": (hits[0] - first) if hits else None,
                "share_alarmed": len(hits) / len(pos),
            }
        )
    return out
