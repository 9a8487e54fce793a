"""The frame tier and the lesion tier of the polyp alarm, measured by TRUE-Colon.

The app's alarm is a frame-level decision (``score >= threshold``, :mod:`polypvision.decision`),
so a segmentation metric such as Dice says little about what a clinician experiences: how often
a polyp frame is flagged, how often a clean frame is flagged, and how long a polyp stays on
screen before the first alarm. The ``true_colon`` package (TRUE-Colon, a deployment-oriented
evaluation protocol for polyp detectors) computes exactly those numbers from a COCO ground truth
and COCO-format predictions. This module is the adapter: it turns per-frame records into the two
COCO documents so that what ``true_colon`` thresholds *is* the app's frame decision, runs its
tiers, and hands back plain dicts for reports. No Qt, no model: the records come from whatever
ran the model.

How ``true_colon`` reduces a frame to a score (``per_frame_max_scores``), and why the
predictions are built the way they are:

* a polyp-free frame scores the highest confidence among all its predictions, so any alert
  anywhere is a false alarm;
* a polyp frame scores the highest confidence among predictions that overlap a ground-truth box
  (``IoU > iou_thr``, strictly; the protocol's ``iou_thr`` is 0.0: any overlap); a confident
  prediction in the wrong place scores 0 there.

Our alarm does not point anywhere: the app flags the frame. To make ``true_colon`` threshold the
frame score and nothing else, :func:`to_coco` by default emits one prediction per frame, a box
covering the whole frame scored with ``record.score``. It overlaps every ground-truth box, so
``true_colon``'s per-frame score equals ``record.score`` on every frame, polyp or not (checked in
the tests). With ``localized=True`` it emits the predicted components instead, each scored with
the frame score (the app outlines all of them when the frame alarms); then a polyp frame counts
only if an outlined region touches the polyp, which is TRUE-Colon's own, stricter rule and the
meaning of the AFROC's y-axis. The false-alarm side is the same in both modes.

What ``true_colon`` computes here: the identity join, the per-frame reduction, the frame
confusion at a threshold, the matched operating point, the AFROC, and the lesion tier (latency,
share of a lesion's frames alarmed, persistence counts). What it does not, and is computed here
by hand: AUROC of the frame score (TRUE-Colon reports none; a rank formula on its own reduced
frame scores) and the median latency (it reports the mean only).

Scores must lie in [0, 1], as the app's do: ``true_colon``'s shared AFROC grid and its "reject
everything" threshold (``1 + 1e-9``) assume it. ``true_colon`` needs Python >= 3.11 and is in the
``eval``, ``train`` and ``test`` extras; it is imported on first use so that :class:`FrameRecord`
and :func:`to_coco` work without it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from polypvision.errors import UserError

if TYPE_CHECKING:
    from true_colon import EvaluationResult, Evaluator

Box = tuple[float, float, float, float]  # x, y, w, h in pixels (COCO's bbox order)
Point = tuple[float, float]  # (false-alarm rate, sensitivity)

#: The annotation field carrying a lesion's identity (``true_colon``'s default ``lesion_id_key``).
LESION_KEY = "unique_id"
#: Default frame rate for latencies in seconds: CVC-ClinicDB and PolypGen's sequences are 25 fps.
DEFAULT_FPS = 25.0
#: TRUE-Colon's matched operating point: 4.5% of polyp-free frames alarmed.
TARGET_FAR = 0.045

# The app never alarms on a zero score ("s >= threshold and s > 0"); true_colon needs a threshold
# above 0 for the same reason (a frame without a valid detection scores 0). The smallest positive
# float keeps threshold 0 meaning what it means in the app: any outlined region alarms.
_MIN_CONF = math.ulp(0.0)


@dataclass(frozen=True)
class FrameRecord:
    """One evaluated frame: its ground truth, the model's outlined regions and its alarm score.

    ``(dataset, stem)`` identifies the frame. ``video`` and ``index`` place it in a sequence
    (``None`` and 0 for a still image); a video's polyp frames make one lesion (CVC-ClinicDB:
    one polyp per sequence). ``score`` is the frame's decision score: the app alarms when it is
    at least the operating threshold (persistence, if any, is the caller's to fold in, e.g. by
    scoring frames that did not persist 0).
    """

    dataset: str
    stem: str
    video: str | None
    index: int
    gt_boxes: list[Box]
    pred_boxes: list[Box]
    pred_scores: list[float]
    score: float
    width: int
    height: int

    @property
    def has_polyp(self) -> bool:
        """Whether the frame shows a polyp (has at least one ground-truth box)."""
        return bool(self.gt_boxes)


# --- COCO ------------------------------------------------------------------------------------


def _frame_key(r: FrameRecord) -> str:
    """The frame's file name in the COCO ground truth: readable, unique, and ending in
    ``#<index>`` so that :class:`_RecordIds` can hand true_colon the temporal index."""
    parts = [r.dataset] + ([r.video] if r.video is not None else []) + [r.stem]
    return "/".join(parts) + f"#{r.index}"


def _lesion_id(dataset: str, video: str) -> str:
    """One lesion per video: the sequences we have show one polyp each."""
    return f"{dataset}/{video}"


@dataclass(frozen=True)
class _RecordIds:
    """true_colon's identity rule for :func:`to_coco` output (an ``IdCanonicalizer``).

    true_colon's built-in rules derive the id from a file *stem* and the frame index from its
    trailing digits; our stems repeat across datasets ("1" in CVC-ClinicDB and elsewhere) and
    carry no reliable index. Here the file name is the id (unique by construction, and
    true_colon checks that) and the index is what follows its last ``#``.
    """

    name: str = "polypvision-frame"

    def canonical(self, raw: str) -> str | None:
        return raw if isinstance(raw, str) and raw else None

    def frame_index(self, canonical: str) -> int | None:
        _, sep, tail = canonical.rpartition("#")
        try:
            return int(tail) if sep else None
        except ValueError:
            return None


def _check(records: Sequence[FrameRecord]) -> None:
    """Reject what would make true_colon's numbers silently wrong."""
    seen: set[tuple[str, str]] = set()
    for r in records:
        key = (r.dataset, r.stem)
        if key in seen:
            raise ValueError(f"frame {r.dataset}/{r.stem} appears twice")
        seen.add(key)
        if not (math.isfinite(r.score) and 0.0 <= r.score <= 1.0):
            raise ValueError(f"frame {r.dataset}/{r.stem}: score {r.score} is not in [0, 1]")
        if len(r.pred_boxes) != len(r.pred_scores):
            raise ValueError(
                f"frame {r.dataset}/{r.stem}: {len(r.pred_boxes)} predicted boxes but "
                f"{len(r.pred_scores)} scores"
            )
        if r.width <= 0 or r.height <= 0:
            raise ValueError(f"frame {r.dataset}/{r.stem}: size {r.width}x{r.height}")


def to_coco(
    records: Sequence[FrameRecord], *, localized: bool = False
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The records as COCO ground truth and COCO results (predictions), in true_colon's terms.

    Ground truth: one image per record (integer ``id``; ``file_name`` unique and ending in
    ``#<frame index>``; plus ``dataset``, ``video`` and ``frame_index`` for readers), one
    category ``polyp``, one annotation per ground-truth box. Boxes of a video frame carry the
    lesion identity (``unique_id`` = ``"<dataset>/<video>"``) that true_colon's lesion tier
    groups frames by; still images carry none, so they stay out of the lesion tier.

    Predictions (integer ``image_id``, Detectron2-style), so that the per-frame score
    true_colon derives is the app's decision:

    * ``localized=False`` (the frame decision): one box covering the whole frame, scored with
      ``record.score``. It overlaps any ground-truth box, so true_colon's per-frame score is
      ``record.score`` on every frame.
    * ``localized=True`` (TRUE-Colon's rule): each predicted component, scored with the frame
      score, so every outlined region is shown exactly when the frame alarms (the component's
      own score travels as ``component_score``). A frame scored above 0 with no component
      (inconsistent input: the app scores such a frame 0) gets a zero-size box at its centre:
      the alarm counts as a false alarm on a polyp-free frame but, pointing nowhere, finds no
      polyp. Polyp-free frames score the same in both modes.
    """
    _check(records)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    preds: list[dict[str, Any]] = []
    for image_id, r in enumerate(records, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": _frame_key(r),
                "width": int(r.width),
                "height": int(r.height),
                "dataset": r.dataset,
                "video": r.video,
                "frame_index": int(r.index),
            }
        )
        for x, y, w, h in r.gt_boxes:
            ann: dict[str, Any] = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": 1,
                "bbox": [float(x), float(y), float(w), float(h)],
                "area": float(w) * float(h),
                "iscrowd": 0,
            }
            if r.video is not None:
                ann[LESION_KEY] = _lesion_id(r.dataset, r.video)
            annotations.append(ann)
        score = float(r.score)
        if not localized:
            whole = [0.0, 0.0, float(r.width), float(r.height)]
            preds.append({"image_id": image_id, "category_id": 1, "bbox": whole, "score": score})
        elif r.pred_boxes:
            for (x, y, w, h), s in zip(r.pred_boxes, r.pred_scores):
                box = [float(x), float(y), float(w), float(h)]
                preds.append(
                    {
                        "image_id": image_id,
                        "category_id": 1,
                        "bbox": box,
                        "score": score,
                        "component_score": float(s),
                    }
                )
        else:
            centre = [r.width / 2.0, r.height / 2.0, 0.0, 0.0]
            preds.append({"image_id": image_id, "category_id": 1, "bbox": centre, "score": score})
    gt = {
        "info": {"description": "polypvision frame records"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "polyp"}],
    }
    return gt, preds


# --- true_colon --------------------------------------------------------------------------------


def _true_colon() -> ModuleType:
    """Import true_colon, or say in one line how to get it."""
    try:
        import true_colon
    except ImportError:
        raise UserError(
            "the frame and lesion tiers need true_colon (Python >= 3.11): pip install "
            "'polypvision[eval]'"
        ) from None
    return true_colon


def _conf(threshold: float) -> float:
    """The app's threshold as true_colon's ``conf``: ``score >= t`` and ``score > 0``."""
    return max(float(threshold), _MIN_CONF)


def evaluator(
    *,
    tiers: Iterable[str] = ("frame",),
    threshold: float = 0.5,
    fps: float = DEFAULT_FPS,
    conf_grid: Sequence[float] | None = None,
    target_far: float = TARGET_FAR,
    tolerance: float = 0.005,
) -> Evaluator:
    """A true_colon evaluator for :func:`to_coco` output: every setting in one place.

    Matching is TRUE-Colon's (``IoU > 0``); no top-k cut per frame (true_colon's default keeps
    100 boxes, which would only matter for the localized mode and never for the whole-frame
    box); frame ids by :class:`_RecordIds`, predictions joined by integer image id.
    """
    tc = _true_colon()
    config = tc.EvaluationConfig(
        iou_thr=0.0,
        conf=_conf(threshold),
        tiers=frozenset(tiers),
        conf_grid=tuple(conf_grid) if conf_grid is not None else tc.DEFAULT_CONF_GRID,
        max_det_per_image=None,
        threshold=tc.ThresholdConfig(target_fpr=target_far, tolerance=tolerance),
        lesion=tc.LesionConfig(lesion_id_key=LESION_KEY, fps=float(fps)),
    )
    ev: Evaluator = tc.create_evaluator(
        None, canonicalizer=_RecordIds(), id_source="gt_integer", config=config
    )
    return ev


def _evaluate(records: Sequence[FrameRecord], *, localized: bool, **settings: Any) -> Any:
    gt, preds = to_coco(records, localized=localized)
    result: EvaluationResult = evaluator(**settings).evaluate(gt, preds)
    return result


def frame_scores(
    records: Sequence[FrameRecord], *, localized: bool = False
) -> tuple[list[float], list[float]]:
    """true_colon's per-frame scores ``(polyp frames, polyp-free frames)``, in record order.

    With the default whole-frame predictions these are the records' own scores; with
    ``localized=True`` a polyp frame whose outlined regions miss the polyp scores 0.
    """
    tc = _true_colon()
    ev = evaluator()
    gt, preds = to_coco(records, localized=localized)
    joined = tc.canonicalize(gt, preds, canonicalizer=ev.canonicalizer, id_source=ev.id_source)
    pos, neg = tc.per_frame_max_scores(joined.coco_gt, joined.preds, iou_thr=ev.config.iou_thr)
    return list(pos), list(neg)


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float | None:
    """Area under the ROC of a score: the chance that a random polyp frame outscores a random
    polyp-free frame, ties counting half (Mann-Whitney U / (n_pos * n_neg)). ``None`` without
    frames of both kinds. TRUE-Colon reports no AUROC, so this one is computed here."""
    pos = np.asarray(positive, dtype=np.float64)
    neg = np.sort(np.asarray(negative, dtype=np.float64))
    if pos.size == 0 or neg.size == 0:
        return None
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (pos.size * neg.size))


# --- the frame tier ----------------------------------------------------------------------------


def frame_tier(records: Sequence[FrameRecord], threshold: float) -> dict[str, Any]:
    """The frame tier at one operating threshold (the app's rule: ``score >= threshold``, and a
    zero score never alarms).

    ``sensitivity``: share of polyp frames alarmed. ``false_alarm_rate``: share of polyp-free
    frames alarmed. ``auroc``: of the frame score, polyp vs polyp-free frames (threshold-free).
    Counts ``tp``/``fn`` (polyp frames) and ``fp``/``tn`` (polyp-free frames), from
    true_colon's frame tier on whole-frame predictions. ``localized_sensitivity`` (and
    ``localized_tp``) is TRUE-Colon's own, stricter figure: a polyp frame counts only if an
    outlined region touches the polyp; the gap to ``sensitivity`` is alarms that point at the
    wrong place.
    """
    tc = _true_colon()
    conf = _conf(threshold)
    pos, neg = frame_scores(records)
    # Handed the reduced scores, true_colon reads neither ground truth nor predictions again.
    m = tc.compute_frame_metrics({}, [], iou_thr=0.0, conf=conf, scores=(pos, neg))
    loc_pos, loc_neg = frame_scores(records, localized=True)
    loc = tc.compute_frame_metrics({}, [], iou_thr=0.0, conf=conf, scores=(loc_pos, loc_neg))
    return {
        "threshold": float(threshold),
        "n_polyp_frames": len(pos),
        "n_polyp_free_frames": len(neg),
        "tp": m.tp,
        "fn": m.fn,
        "fp": m.fp,
        "tn": m.tn,
        "sensitivity": m.sensitivity,
        "false_alarm_rate": m.fpr,
        "specificity": m.specificity,
        "auroc": auroc(pos, neg),
        "localized_tp": loc.tp,
        "localized_sensitivity": loc.sensitivity,
    }


def operating_point(
    records: Sequence[FrameRecord], target_far: float = TARGET_FAR, *, tolerance: float = 0.005
) -> dict[str, Any]:
    """The threshold that alarms on at most ``target_far`` of these (validation) records'
    polyp-free frames, by true_colon's ``match_operating_point``.

    true_colon tries the distinct positive scores of the polyp-free frames (and ``1 + 1e-9``,
    "never alarm") and returns the lowest one whose false-alarm rate is at most the target, so
    the threshold is always one of those scores and errs on the safe side: a threshold just
    above the next-lower polyp-free score would give the same rate and possibly a little more
    sensitivity. When even the highest polyp-free score is one false alarm too many (fewer than
    ``1 / target_far`` polyp-free frames, or a polyp-free frame scored 1), the answer is
    ``1 + 1e-9``: ``never_alarms`` is then True, and it is no threshold a model contract
    accepts ([0, 1]). ``feasible`` is False only without polyp-free frames (threshold 0).
    """
    gt, preds = to_coco(records)
    res = evaluator(target_far=target_far, tolerance=tolerance).match_operating_point(
        gt, preds, target_fpr=target_far
    )
    return {
        "threshold": res.threshold,
        "target_false_alarm_rate": res.target_fpr,
        "false_alarm_rate": res.achieved_fpr,
        "sensitivity": res.achieved_tpr,
        "feasible": res.feasible,
        "never_alarms": res.threshold > 1.0,
        "n_polyp_frames": res.n_pos_frames,
        "n_polyp_free_frames": res.n_neg_frames,
    }


def afroc(
    records: Sequence[FrameRecord],
    *,
    localized: bool = True,
    conf_grid: Sequence[float] | None = None,
) -> list[Point]:
    """true_colon's AFROC as ``(false-alarm rate, sensitivity)`` points, by rising rate.

    One point per threshold of true_colon's shared grid (0.001, 0.005, 0.01, 0.05 ... 1.0; pass
    ``conf_grid=[t]`` for the point at an operating threshold ``t``), the same grid for every
    model so that curves overlay. x: share of polyp-free frames alarmed, exactly the frame
    tier's false-alarm rate. y: share of ground-truth polyp *boxes* found, each claimed by at
    most one prediction. With ``localized=True`` (TRUE-Colon's AFROC) a box is found when its
    frame alarms and an outlined region touches it; with ``localized=False`` each alarmed frame
    claims one box, which is the frame sensitivity when frames show one polyp each. The curve
    runs from the grid's top threshold to its lowest (0.001), not to (1, 1): frames scoring
    below 0.001 never alarm on it.
    """
    grid = tuple(conf_grid) if conf_grid is not None else None
    if grid is not None and not all(t > 0.0 for t in grid):
        raise ValueError("AFROC thresholds must be above 0 (a zero score never alarms)")
    result = _evaluate(records, localized=localized, tiers=("afroc",), conf_grid=grid)
    curve = result.afroc
    points = [(float(x), float(y)) for x, y in zip(curve.fpf, curve.tpr_loc)]
    return sorted(points)


def plot_afroc(
    curves: Mapping[str, Sequence[Point]],
    path: str | Path,
    marks: Mapping[str, Point] | None = None,
    *,
    target_far: float = TARGET_FAR,
    title: str = "AFROC: sensitivity against false alarms on polyp-free frames",
    ylabel: str = "Sensitivity (share of polyps found)",
) -> Path:
    """Write the AFROC curves of several models to one PNG (matplotlib's Agg canvas, no
    pyplot: no global backend is chosen, so this is safe inside the Qt app).

    One line per model in ``curves``; ``marks`` puts each model's operating point on it (e.g.
    :func:`afroc` with ``conf_grid=[threshold]``, or the frame tier's ``(false_alarm_rate,
    sensitivity)``); a dotted vertical line marks ``target_far``. x spans [0, 1], so models
    compare on the whole curve while the line shows where the app operates.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError("plotting needs matplotlib: pip install 'polypvision[eval]'") from None
    path = Path(path)
    fig = Figure(figsize=(7.0, 5.0), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours: dict[str, Any] = {}
    for name, points in curves.items():
        pts = sorted(points)
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        (line,) = ax.plot(xs, ys, marker=".", markersize=4, linewidth=1.5, label=name)
        colours[name] = line.get_color()
    for name, (far, sens) in (marks or {}).items():
        ax.plot(
            [far],
            [sens],
            marker="o",
            markersize=8,
            linestyle="none",
            color=colours.get(name, "black"),
            markeredgecolor="black",
            label=f"{name}: operating point ({far:.1%} false alarms, {sens:.1%} sensitivity)",
        )
    ax.axvline(
        target_far, linestyle=":", color="grey", label=f"target false-alarm rate {target_far:.1%}"
    )
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("False-alarm rate (share of polyp-free frames alarmed)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


# --- the lesion tier ---------------------------------------------------------------------------


def lesion_tier(
    records: Sequence[FrameRecord], threshold: float, *, fps: float = DEFAULT_FPS
) -> dict[str, Any]:
    """Per lesion (one per video with polyp frames): how long until the first alarm, and how
    much of the time it is on screen the alarm is up. By true_colon's lesion tier.

    A lesion's frames are its video's polyp frames; it is found on a frame when that frame
    alarms (whole-frame predictions, so an alarm always "overlaps" the polyp, as the app's
    frame-level alarm does). ``latency_frames`` = index of the first alarmed polyp frame minus
    index of the first polyp frame (alarms on polyp-free frames before it are false alarms, not
    an early find); ``latency_seconds`` = that / ``fps``, assuming consecutive indices at
    ``fps``; ``alarmed_share`` = alarmed polyp frames / polyp frames. ``None`` latencies: never
    alarmed. ``detected_within_{1,3,5}s`` are true_colon's: at least 15 alarmed polyp frames
    within that many seconds of the first polyp frame, a run rather than one lucky frame.

    What does not fit true_colon and is done here: it takes lesion identities from the
    annotations, so :func:`to_coco` injects one per video (the sequences here show one polyp
    each; a video with two polyps would be measured as one lesion); it reports mean latency
    only, so the median is computed here from its per-lesion latencies.
    """
    video = [r for r in records if r.video is not None]
    lesions: list[dict[str, Any]] = []
    if any(r.has_polyp for r in video):
        result = _evaluate(video, localized=False, tiers=("lesion",), threshold=threshold, fps=fps)
        where = {
            _lesion_id(r.dataset, r.video): (r.dataset, r.video)
            for r in video
            if r.video is not None
        }
        for rec in result.lesion.records:
            dataset, vid = where[rec.lesion_id]
            lesions.append(
                {
                    "dataset": dataset,
                    "video": vid,
                    "n_polyp_frames": rec.n_frames_visible,
                    "n_alarmed": rec.n_frames_detected,
                    "alarmed_share": rec.det_fraction,
                    "detected": rec.detected_any,
                    "first_polyp_frame": rec.first_visible_frame,
                    "first_alarm_frame": rec.first_detected_frame,
                    "latency_frames": rec.latency_frames,
                    "latency_seconds": rec.latency_seconds,
                    "detected_within_1s": rec.detected_within_1s,
                    "detected_within_3s": rec.detected_within_3s,
                    "detected_within_5s": rec.detected_within_5s,
                }
            )
        s = result.lesion.summary
        summary: dict[str, Any] = {
            "n_lesions": s.n_lesions,
            "n_detected": s.detected_any,
            "n_detected_25pct": s.detected_25pct,
            "n_detected_50pct": s.detected_50pct,
            "mean_alarmed_share": s.mean_det_fraction,
            "mean_latency_frames": s.mean_latency_frames,
            "mean_latency_seconds": s.mean_latency_seconds,
            "n_latency_lesions": s.n_latency_lesions,
            "detected_within_1s": s.detected_within_1s,
            "detected_within_3s": s.detected_within_3s,
            "detected_within_5s": s.detected_within_5s,
        }
    else:
        summary = {
            "n_lesions": 0,
            "n_detected": 0,
            "n_detected_25pct": 0,
            "n_detected_50pct": 0,
            "mean_alarmed_share": None,
            "mean_latency_frames": None,
            "mean_latency_seconds": None,
            "n_latency_lesions": 0,
            "detected_within_1s": 0,
            "detected_within_3s": 0,
            "detected_within_5s": 0,
        }
    latencies = [les["latency_frames"] for les in lesions if les["latency_frames"] is not None]
    median = float(np.median(latencies)) if latencies else None
    summary["median_latency_frames"] = median
    summary["median_latency_seconds"] = None if median is None else median / float(fps)
    return {
        "threshold": float(threshold),
        "fps": float(fps),
        "lesions": lesions,
        "summary": summary,
    }
