from __future__ import annotations

import numpy as np
import pytest

from polypvision.fov import Blackout, detect_fov
from polypvision.overlay import OverlayStyle, describe, draw, draw_hud, find_contours, parse_color
from polypvision.smoothing import Smoother, SmoothingConfig
from polypvision.sources.synthetic import SyntheticClip


def blob(h=32, w=32, val=0.9, r=6, cx=16, cy=16):
    yy, xx = np.mgrid[:h, :w]
    p = np.zeros((h, w), np.float32)
    p[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = val
    return p


def test_ema_damps_a_single_frame_flicker():
    s = Smoother(SmoothingConfig(alpha=0.4, min_area=0), threshold=0.5)
    on = blob()
    for _ in range(5):
        _, m = s.update(on)
    assert m.sum() > 0
    _, m = s.update(np.zeros_like(on))  # one dropped-out frame
    assert m.sum() > 0, "a one-frame dropout must not blank the outline"


def test_hysteresis_keeps_pixels_between_off_and_on():
    s = Smoother(SmoothingConfig(alpha=1.0, on=0.6, off=0.3, min_area=0), threshold=0.5)
    _, m = s.update(blob(val=0.8))
    area = int(m.sum())
    _, m = s.update(blob(val=0.45))  # below on, above off: stays
    assert int(m.sum()) == area
    _, m = s.update(blob(val=0.2))
    assert m.sum() == 0
    s.reset()
    _, m = s.update(blob(val=0.45))  # after reset, 0.45 < on: nothing
    assert m.sum() == 0


def test_min_area_removes_specks():
    p = blob(r=8) + blob(r=1, cx=3, cy=3)
    s = Smoother(SmoothingConfig(alpha=1.0, min_area=0.01), threshold=0.5)
    _, m = s.update(p)
    assert m[3, 3] == 0 and m[16, 16] == 1


def test_alpha_one_is_identity_threshold():
    rng = np.random.default_rng(1)
    s = Smoother(SmoothingConfig(alpha=1.0, on=0.5, off=0.5, min_area=0), threshold=0.5)
    for _ in range(3):
        p = rng.random((16, 16), dtype=np.float32)
        _, m = s.update(p)
        assert np.array_equal(m.astype(bool), p >= 0.5)


def test_bad_smoothing_config():
    with pytest.raises(ValueError):
        SmoothingConfig(alpha=0).validated()


def test_overlay_draws_inside_mask_only():
    img = np.full((60, 80, 3), 100, np.uint8)
    mask = np.zeros((60, 80), np.uint8)
    mask[20:40, 30:50] = 255
    contours = find_contours(mask)
    out = draw(
        img.copy(), mask, contours, OverlayStyle(contour=False, color=(0, 255, 0), opacity=0.5)
    )
    assert out[30, 40, 1] > 150 and out[30, 40, 0] < 100  # tinted green inside
    assert np.array_equal(out[5, 5], img[5, 5])  # untouched outside
    det = describe(mask, np.array([[0.7]]), contours)
    assert det.present and det.boxes == ((30, 20, 20, 20),)
    assert det.area_fraction == pytest.approx(400 / 4800)
    boxed = draw(img.copy(), mask, contours, OverlayStyle(fill=False, contour=False, box=True))
    assert boxed[20, 35].tolist() == [0, 255, 0]
    off = draw(img.copy(), mask, contours, OverlayStyle(enabled=False))
    assert np.array_equal(off, img)
    assert draw_hud(img.copy(), ["fps 30"]).shape == img.shape


def test_parse_color():
    assert parse_color("#ff0000") == (0, 0, 255)
    assert parse_color("0,128,255") == (255, 128, 0)
    with pytest.raises(ValueError):
        parse_color("red")


def test_fov_blackout_removes_text_outside_the_view():
    clip = SyntheticClip(320, 240)
    frame = clip.frame(0)
    # tower text in the dark corner, as endoscopy towers print patient details
    import cv2

    cv2.putText(frame, "PATIENT X", (2, 230), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
    fov = detect_fov([frame])
    out = Blackout(fov)(frame.copy())
    assert fov[120, 160] == 1 and fov[235, 5] == 0
    assert out[fov == 0].max() == 0, "no pixel outside the field of view survives"
    assert np.array_equal(out[120, 160], frame[120, 160])
