"""Drawing as composable annotators (issue 23): the style picks them, order is fill, contour,
box, HUD; ``draw`` is exactly the overlay part of them; the processor draws through them."""

from __future__ import annotations

import numpy as np
from toy_model import build_toy_model

from polypvision.model.session import Segmenter
from polypvision.overlay import (
    BoxAnnotator,
    ContourAnnotator,
    FillAnnotator,
    HudAnnotator,
    OverlayStyle,
    Scene,
    annotate,
    annotators_for,
    draw,
    find_contours,
)
from polypvision.pipeline.processor import FrameProcessor, StreamSettings
from polypvision.types import Frame


def _scene():
    mask = np.zeros((60, 80), np.uint8)
    mask[10:30, 20:50] = 255
    return Scene(mask, find_contours(mask), ["frame 3", "POLYP"])


def test_style_picks_the_annotators_in_drawing_order():
    kinds = [type(a) for a in annotators_for(OverlayStyle(box=True, hud=True))]
    assert kinds == [FillAnnotator, ContourAnnotator, BoxAnnotator, HudAnnotator]
    assert annotators_for(OverlayStyle(enabled=False, hud=True)) == (HudAnnotator(),)
    assert annotators_for(OverlayStyle(fill=False, contour=False)) == ()


def test_draw_is_the_overlay_annotators_and_the_hud_adds_only_text():
    sc = _scene()
    base = np.full((60, 80, 3), 90, np.uint8)
    style = OverlayStyle(box=True)
    by_draw = draw(base.copy(), sc.mask, sc.contours, style)
    by_annotators = annotate(base.copy(), sc, annotators_for(style))
    assert np.array_equal(by_draw, by_annotators) and not np.array_equal(by_draw, base)
    with_hud = annotate(base.copy(), sc, annotators_for(OverlayStyle(box=True, hud=True)))
    assert not np.array_equal(with_hud, by_draw)


def test_the_processor_renders_through_the_annotators(tmp_path):
    seg = Segmenter(build_toy_model(tmp_path / "m.onnx"), "cpu")
    img = np.full((48, 64, 3), 128, np.uint8)
    img[10:30, 10:30] = (0, 0, 230)
    style = OverlayStyle(hud=True)
    proc = FrameProcessor(seg, settings=StreamSettings(style=style))
    (r,) = proc.process([Frame(index=0, image=img, t_capture=0.0, pts_s=0.0)])
    lines = [
        "frame 0  t 0.00 s",
        f"POLYP {r.detection.area_fraction:.1%}  score {r.detection.score:.2f}",
        "toy-redness on CPU",
    ]
    want = annotate(img.copy(), Scene(r.mask, r.contours, lines), annotators_for(style))
    assert np.array_equal(r.annotated, want)
