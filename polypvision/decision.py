"""The alarm: when the app says "a polyp on this frame", as one measured operating point.

Pixels over the threshold are not an alarm: fold edges at the rim, reddened mucosa and stool
light up single pixels with high probability on polyp-free frames. The alarm is a frame-level
decision with three parts, all chosen on validation at export and carried in the model's
contract (``output.decision``), so ``annotate``, ``batch``, the report and the app take the
same one:

1. a **score** per frame: ``presence`` (the model's frame-level output, trained on polyp and
   polyp-free frames), ``presence*peak`` (that times the highest smoothed probability of the
   outlined region), or ``peak`` (that highest probability alone, for models without a
   presence output); a frame with no outlined region scores 0 whatever the score kind;
2. an **operating threshold** on that score, set where the validation polyp-free frames are
   alarmed at the target rate (4.5%, TRUE-Colon's matched operating point);
3. **persistence**: the frame alarms only if the score cleared the threshold on ``min_hits`` of
   the last ``window`` frames (a polyp stays at one place across frames at the scope's rate; a
   fold edge flickers). A stream younger than ``window`` frames needs ``min_hits`` scaled down to
   what it has seen, so a single still image is judged on itself.

A model without a decision in its contract keeps the old rule: any region left after the
smoothing and the gate is an alarm (score ``peak`` at its pixel threshold, no persistence).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from polypvision.errors import ContractError

SCORES = ("presence", "presence*peak", "peak")


@dataclass(frozen=True)
class DecisionSpec:
    """The frame decision of a model (``output.decision`` in its contract)."""

    score: str = "peak"
    threshold: float = 0.0  # 0: any outlined region alarms (the legacy rule)
    window: int = 1
    min_hits: int = 1
    target_false_alarm: float | None = None
    chosen_on: str | None = None
    validation: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, doc: Any) -> DecisionSpec:
        if doc is None:
            return cls()
        if not isinstance(doc, dict):
            raise ContractError("model contract: 'output.decision' must be a JSON object")
        score = doc.get("score", "peak")
        if score not in SCORES:
            raise ContractError(
                f"model contract: 'output.decision.score' is {score!r}, expected one of "
                f"{', '.join(SCORES)}"
            )
        try:
            thr = float(doc.get("threshold", 0.0))
            window, hits = int(doc.get("window", 1)), int(doc.get("min_hits", 1))
        except (TypeError, ValueError):
            raise ContractError(
                "model contract: 'output.decision' threshold, window and min_hits must be numbers"
            ) from None
        if not (math.isfinite(thr) and 0.0 <= thr <= 1.0):
            raise ContractError(
                f"model contract: 'output.decision.threshold' must lie in [0, 1], got {thr}"
            )
        if window < 1 or not 1 <= hits <= window:
            raise ContractError(
                "model contract: 'output.decision' needs window >= 1 and 1 <= min_hits <= window, "
                f"got window {window}, min_hits {hits}"
            )
        far = doc.get("target_false_alarm")
        return cls(
            score=str(score),
            threshold=thr,
            window=window,
            min_hits=hits,
            target_false_alarm=None if far is None else float(far),
            chosen_on=doc.get("chosen_on"),
            validation=doc.get("validation"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def describe(self) -> str:
        """One line for cards, reports and ``--help``."""
        persist = (
            f", on {self.min_hits} of the last {self.window} frames" if self.window > 1 else ""
        )
        far = (
            f" (set at {self.target_false_alarm:.1%} false alarms on validation)"
            if self.target_false_alarm is not None
            else ""
        )
        return f"{self.score} >= {self.threshold:.3f}{persist}{far}"


def region_peak(prob: np.ndarray, mask: np.ndarray) -> float:
    """The highest of ``prob`` (float32 HxW) inside ``mask`` (uint8 HxW, nonzero = outlined);
    0 when nothing is outlined. Per frame: no temporary array (OpenCV's masked maximum)."""
    if not cv2.countNonZero(mask):
        return 0.0
    return float(cv2.minMaxLoc(prob, mask)[1])


def frame_score(kind: str, presence: float | None, region_peak: float) -> float:
    """The frame's decision score; ``region_peak`` is the highest smoothed probability inside
    the outlined region (0 when nothing is outlined, which makes every score 0).

    A score that rests on the presence output needs it: a caller that did not pass it is a bug
    (judging a presence model on its mask alone gives other alarms), so it raises."""
    if kind != "peak" and presence is None:
        raise ValueError(
            f"the frame decision scores {kind!r} but no presence value was passed; run the model "
            "with infer_full()/infer_small() and pass its presence output"
        )
    if region_peak <= 0.0:
        return 0.0
    if kind == "peak" or presence is None:
        return float(region_peak)
    if kind == "presence":
        return float(presence)
    return float(presence) * float(region_peak)


class Persistence:
    """``min_hits`` of the last ``window`` frames; one per stream, reset on seek and source
    change. A stream younger than ``window`` frames needs ``ceil(min_hits * seen / window)``."""

    def __init__(self, window: int = 1, min_hits: int = 1) -> None:
        self.window, self.min_hits = int(window), int(min_hits)
        self._hits = np.zeros(self.window, bool)
        self._seen = 0

    def reset(self) -> None:
        self._hits[:] = False
        self._seen = 0

    def update(self, hit: bool) -> bool:
        self._hits[self._seen % self.window] = hit
        self._seen += 1
        seen = min(self._seen, self.window)
        need = max(1, math.ceil(self.min_hits * seen / self.window))
        return bool(hit) and int(self._hits.sum()) >= need


def alarms(scores: np.ndarray, threshold: float, window: int, min_hits: int) -> np.ndarray:
    """The persistent decision over one clip's scores (what :class:`Persistence` gives frame by
    frame), for evaluation and for choosing the rule on validation."""
    p = Persistence(window, min_hits)
    return np.array([p.update(bool(s >= threshold and s > 0.0)) for s in scores], bool)
