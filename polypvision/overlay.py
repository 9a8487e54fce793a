"""Drawing the findings onto the frame: translucent fill, contour, bounding box, HUD.

Pure functions of (frame, mask, style): the same code burns overlays into exports and draws
the live view. Colours are BGR tuples. Drawing happens in place on a buffer the caller owns
(the pipeline copies the frame once into it), so nothing is allocated per frame beyond what
OpenCV's contour finder returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

# The settings value (and its text forms) live with every other setting; importable from here.
from polypvision.settings import STYLES, OverlayStyle, parse_color
from polypvision.types import Detection, FrameResult

__all__ = [
    "STYLES",
    "Annotator",
    "BoxAnnotator",
    "ContourAnnotator",
    "FillAnnotator",
    "HudAnnotator",
    "OverlayStyle",
    "Scene",
    "annotate",
    "annotators_for",
    "describe",
    "draw",
    "draw_hud",
    "find_contours",
    "hud_lines",
    "parse_color",
]


def find_contours(mask: np.ndarray) -> Sequence[np.ndarray]:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return contours


def describe(
    mask: np.ndarray,
    prob_small: np.ndarray,
    contours: Sequence[np.ndarray],
    score: float = 0.0,
) -> Detection:
    """Per-frame findings from the full-size mask (0/255, empty unless the frame alarms), the
    model-size probabilities and the frame's decision score."""
    boxes = tuple(tuple(int(v) for v in cv2.boundingRect(c)) for c in contours)
    area = float(cv2.countNonZero(mask)) / mask.size if mask.size else 0.0
    return Detection(
        present=bool(boxes),
        area_fraction=area,
        boxes=boxes,  # type: ignore[arg-type]
        peak_probability=float(prob_small.max()) if prob_small.size else 0.0,
        score=float(score),
    )


_SOLID: dict[str, np.ndarray] = {}


def _solid(h: int, w: int, color: tuple[int, int, int]) -> np.ndarray:
    """A cached frame-sized block of one colour (one allocation per size/colour, not per frame)."""
    key = f"{color}"
    buf = _SOLID.get(key)
    if buf is None or buf.shape[0] < h or buf.shape[1] < w:
        buf = np.empty((max(h, 1), max(w, 1), 3), np.uint8)
        buf[:] = color
        _SOLID.clear()
        _SOLID[key] = buf
    return buf[:h, :w]


# ----------------------------------------------------------------------------- annotators
# Small drawing steps composed in order, as ``supervision``'s annotators compose: each draws one
# thing from the same scene, so a view or an export picks what it shows by listing annotators,
# and nothing that draws lives inside the frame processor.


@dataclass(frozen=True)
class Scene:
    """What annotators draw from: the alarm's mask (0/255 at the canvas's size) and its outlines,
    and the frame's text (HUD lines; empty when no HUD is wanted)."""

    mask: np.ndarray
    contours: Sequence[np.ndarray]
    lines: Sequence[str] = ()


class Annotator(Protocol):
    def annotate(self, canvas: np.ndarray, scene: Scene) -> np.ndarray: ...


@dataclass(frozen=True)
class FillAnnotator:
    """A translucent fill of the outlined regions (only their bounding box is blended)."""

    color: tuple[int, int, int]
    opacity: float

    def annotate(self, canvas: np.ndarray, scene: Scene) -> np.ndarray:
        if self.opacity <= 0 or not len(scene.contours):
            return canvas
        x, y, w, h = cv2.boundingRect(np.concatenate(scene.contours))
        roi = canvas[y : y + h, x : x + w]
        tinted = cv2.addWeighted(
            roi, 1.0 - self.opacity, _solid(h, w, self.color), self.opacity, 0.0
        )
        cv2.copyTo(tinted, scene.mask[y : y + h, x : x + w], roi)
        return canvas


@dataclass(frozen=True)
class ContourAnnotator:
    color: tuple[int, int, int]
    thickness: int

    def annotate(self, canvas: np.ndarray, scene: Scene) -> np.ndarray:
        if len(scene.contours):
            cv2.drawContours(canvas, scene.contours, -1, self.color, self.thickness, cv2.LINE_AA)
        return canvas


@dataclass(frozen=True)
class BoxAnnotator:
    color: tuple[int, int, int]
    thickness: int

    def annotate(self, canvas: np.ndarray, scene: Scene) -> np.ndarray:
        for c in scene.contours:
            x, y, w, h = cv2.boundingRect(c)
            cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), self.color, self.thickness)
        return canvas


@dataclass(frozen=True)
class HudAnnotator:
    """The scene's text lines, top-right, on a darkened backing."""

    def annotate(self, canvas: np.ndarray, scene: Scene) -> np.ndarray:
        return draw_hud(canvas, scene.lines)


def annotators_for(style: OverlayStyle) -> tuple[Annotator, ...]:
    """The annotators a style asks for, in drawing order (fill under contour under box, the HUD
    on top)."""
    out: list[Annotator] = []
    if style.enabled:
        if style.fill and style.opacity > 0:
            out.append(FillAnnotator(style.color, style.opacity))
        if style.contour:
            out.append(ContourAnnotator(style.color, style.thickness))
        if style.box:
            out.append(BoxAnnotator(style.color, style.thickness))
    if style.hud:
        out.append(HudAnnotator())
    return tuple(out)


def annotate(canvas: np.ndarray, scene: Scene, annotators: Sequence[Annotator]) -> np.ndarray:
    """Run ``annotators`` over ``canvas`` in order (in place) and return it."""
    for a in annotators:
        canvas = a.annotate(canvas, scene)
    return canvas


def hud_lines(result: FrameResult, model: str, provider: str) -> list[str]:
    """The HUD's text for one result: where in the clip, the alarm and its score (a model score,
    not a confidence), and which model ran where."""
    d, f = result.detection, result.frame
    state = f"POLYP {d.area_fraction:.1%}" if d.present else "no polyp"
    return [
        f"frame {f.index}  t {f.pts_s:.2f} s",
        f"{state}  score {d.score:.2f}",
        f"{model} on {provider}",
    ]


def draw(
    canvas: np.ndarray, mask: np.ndarray, contours: Sequence[np.ndarray], style: OverlayStyle
) -> np.ndarray:
    """Burn the overlay (fill, contour, box; no HUD) into ``canvas`` in place and return it."""
    if not style.enabled or not len(contours):
        return canvas
    return annotate(
        canvas,
        Scene(mask, contours),
        [a for a in annotators_for(style) if not isinstance(a, HudAnnotator)],
    )


def draw_hud(canvas: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """Small text block, top-right, with a dark backing so it reads on any frame."""
    if not lines:
        return canvas
    scale = max(0.4, min(canvas.shape[1] / 1280.0, 1.0))
    pad, lh = 6, int(22 * scale) + 4
    width = (
        max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for t in lines) + 2 * pad
    )
    x0 = max(canvas.shape[1] - width - 8, 0)
    y1 = min(8 + lh * len(lines) + pad, canvas.shape[0])
    roi = canvas[8:y1, x0 : x0 + width]
    roi //= 3
    for i, t in enumerate(lines):
        cv2.putText(
            canvas,
            t,
            (x0 + pad, 8 + lh * (i + 1) - 4),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return canvas
