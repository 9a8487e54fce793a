"""Property tests of the pure stages: random sizes, dtypes and values never crash and keep the
output shapes and types right. Frames are drawn as (shape, dtype, seed) and filled with numpy,
so each example is cheap even at 300x300x4.
"""

from __future__ import annotations

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polypvision.fov import Blackout, detect_fov
from polypvision.model.contract import InputSpec
from polypvision.model.processing import Preprocessor, to_bgr, to_probabilities
from polypvision.overlay import OverlayStyle, describe, draw, draw_hud, find_contours
from polypvision.smoothing import Smoother, SmoothingConfig

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

sizes = st.integers(1, 300)


def _image(
    rng: np.random.Generator, h: int, w: int, ch: int | None, dtype: str, special: bool
) -> np.ndarray:
    shape = (h, w) if ch is None else (h, w, ch)
    if dtype == "uint8":
        img = rng.integers(0, 256, shape, dtype=np.uint8)
    elif dtype == "uint16":
        img = rng.integers(0, 65536, shape, dtype=np.uint16)
    else:
        img = (rng.random(shape, dtype=np.float32) * rng.choice([1.0, 255.0, 4000.0])).astype(
            np.float32
        )
        if special:
            flat = img.reshape(-1)
            k = max(1, flat.size // 50)
            flat[rng.integers(0, flat.size, k)] = rng.choice([np.nan, np.inf, -np.inf, -5.0], k)
    return img


@FUZZ
@given(
    h=sizes,
    w=sizes,
    ch=st.sampled_from([None, 1, 3, 4]),
    dtype=st.sampled_from(["uint8", "uint16", "float32"]),
    special=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_to_bgr_any_decoded_image(h, w, ch, dtype, special, seed):
    img = _image(np.random.default_rng(seed), h, w, ch, dtype, special)
    out = to_bgr(img)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    if dtype == "uint8" and ch in (None, 1):
        assert (out[..., 0] == img.reshape(h, w)).all()  # grey copied to all three channels


@FUZZ
@given(h=sizes, w=sizes, seed=st.integers(0, 2**32 - 1))
def test_to_bgr_rejects_two_channels_with_value_error(h, w, seed):
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 2), dtype=np.uint8)
    try:
        to_bgr(img)
    except ValueError as exc:
        assert "unsupported frame shape" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("a 2-channel frame must be refused, not guessed")


specs = st.builds(
    lambda layout, size, color, resize, scale, mean, std: InputSpec(
        name="image",
        layout=layout,
        height=size[0],
        width=size[1],
        color=color,
        resize=resize,
        scale=scale,
        mean=mean,
        std=std,
    ),
    st.sampled_from(["NHWC", "NCHW"]),
    st.tuples(st.integers(1, 96), st.integers(1, 96)),
    st.sampled_from(["RGB", "BGR"]),
    st.sampled_from(["bilinear", "area"]),
    st.sampled_from([1 / 255, 1.0, 2 / 255]),
    st.tuples(*[st.floats(-2, 2, allow_nan=False)] * 3),
    st.tuples(*[st.floats(0.05, 3, allow_nan=False)] * 3),
)


@FUZZ
@given(
    spec=specs,
    frame_sizes=st.lists(st.tuples(sizes, sizes), min_size=1, max_size=4),
    max_batch=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_preprocessor_shapes_and_values(spec, frame_sizes, max_batch, seed):
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in frame_sizes]
    pre = Preprocessor(spec, max_batch)
    x = pre(frames)
    n, h, w = len(frames), spec.height, spec.width
    assert x.dtype == np.float32
    assert x.shape == ((n, h, w, 3) if spec.layout == "NHWC" else (n, 3, h, w))
    assert np.isfinite(x).all()
    # the reference: resize, colour order, (pixel * scale - mean) / std, layout
    interp = cv2.INTER_LINEAR if spec.resize == "bilinear" else cv2.INTER_AREA
    for i, f in enumerate(frames):
        r = f if f.shape[:2] == (h, w) else cv2.resize(f, (w, h), interpolation=interp)
        if spec.color == "RGB":
            r = r[..., ::-1]
        ref = (r.astype(np.float32) * np.float32(spec.scale) - np.float32(spec.mean)) / np.float32(
            spec.std
        )
        got = x[i] if spec.layout == "NHWC" else x[i].transpose(1, 2, 0)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    again = pre(frames[:1])  # buffers are reused; a smaller batch still has the right shape
    assert again.shape[0] == 1


@FUZZ
@given(
    n=st.integers(1, 3),
    h=st.integers(2, 64),
    w=st.integers(2, 64),
    form=st.sampled_from(["NHW", "NHW1", "N1HW"]),
    dtype=st.sampled_from(["float16", "float32", "float64"]),
    kind=st.sampled_from(["probability", "logit"]),
    scale=st.sampled_from([1.0, 50.0, 1e6]),
    special=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_to_probabilities_any_output(n, h, w, form, dtype, kind, scale, special, seed):
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):  # 1e6 overflows float16 to inf: part of the test
        raw = (rng.standard_normal((n, h, w)) * scale).astype(dtype)
    if special:
        raw.reshape(-1)[rng.integers(0, raw.size, max(1, raw.size // 20))] = rng.choice(
            [np.nan, np.inf, -np.inf]
        )
    raw = {"NHW": raw, "NHW1": raw[..., None], "N1HW": raw[:, None]}[form]
    p = to_probabilities(raw, kind)
    assert p.shape == (n, h, w) and p.dtype == np.float32
    assert np.isfinite(p).all() and p.min() >= 0.0 and p.max() <= 1.0


@FUZZ
@given(
    shapes=st.lists(st.tuples(st.integers(1, 64), st.integers(1, 64)), min_size=1, max_size=6),
    alpha=st.floats(0.01, 1.0),
    on=st.floats(0.05, 0.95),
    off_gap=st.floats(0.0, 0.6),
    min_area=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**32 - 1),
)
def test_smoother_random_maps_and_shape_changes(shapes, alpha, on, off_gap, min_area, seed):
    rng = np.random.default_rng(seed)
    sm = Smoother(SmoothingConfig(alpha=alpha, on=on, off=on - off_gap, min_area=min_area), 0.5)
    for shape in shapes + shapes[:1]:  # sizes change between calls, and back
        for _ in range(2):
            prob = rng.random(shape, dtype=np.float32)
            ema, mask = sm.update(prob)
            assert ema.shape == shape and ema.dtype == np.float32
            assert mask.shape == shape and mask.dtype == np.uint8
            assert np.isfinite(ema).all() and ema.min() >= 0.0 and ema.max() <= 1.0
            assert set(np.unique(mask)) <= {0, 1}
            assert not (mask.astype(bool) & (ema < sm.off)).any()  # nothing on below 'off'
    sm.reset()
    prob = rng.random(shapes[0], dtype=np.float32)
    ema, _ = sm.update(prob)
    np.testing.assert_array_equal(ema, prob)  # reset forgets the past


@FUZZ
@given(
    shape=st.tuples(st.integers(1, 48), st.integers(1, 48)),
    on=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**32 - 1),
)
def test_smoother_off_is_exactly_a_threshold(shape, on, seed):
    rng = np.random.default_rng(seed)
    sm = Smoother(SmoothingConfig(alpha=1.0, on=on, off=on, min_area=0.0), 0.5)
    for _ in range(3):
        prob = rng.random(shape, dtype=np.float32)
        _, mask = sm.update(prob)
        np.testing.assert_array_equal(mask, (prob >= on).astype(np.uint8))


def _mask(rng: np.random.Generator, h: int, w: int, kind: str) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    if kind == "noise":
        m[rng.random((h, w)) > 0.7] = 255
    elif kind == "blobs":
        for _ in range(rng.integers(1, 5)):
            c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            ax = (int(rng.integers(1, max(2, w // 2))), int(rng.integers(1, max(2, h // 2))))
            cv2.ellipse(m, c, ax, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    elif kind == "full":
        m[:] = 255
    return m


styles = st.builds(
    OverlayStyle,
    enabled=st.booleans(),
    fill=st.booleans(),
    contour=st.booleans(),
    box=st.booleans(),
    color=st.tuples(*[st.integers(0, 255)] * 3),
    opacity=st.floats(0.0, 1.0),
    thickness=st.integers(1, 8),
    hud=st.booleans(),
)


@FUZZ
@given(
    h=sizes,
    w=sizes,
    kind=st.sampled_from(["empty", "noise", "blobs", "full"]),
    style=styles,
    seed=st.integers(0, 2**32 - 1),
)
def test_overlay_draw_describe_contours(h, w, kind, style, seed):
    rng = np.random.default_rng(seed)
    mask = _mask(rng, h, w, kind)
    canvas = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    before = canvas.copy()
    contours = find_contours(mask)
    det = describe(mask, rng.random((8, 8), dtype=np.float32), contours)
    assert 0.0 <= det.area_fraction <= 1.0 and 0.0 <= det.peak_probability <= 1.0
    assert det.present == bool(det.boxes) == (kind != "empty" and mask.any())
    for x, y, bw, bh in det.boxes:
        assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h and bw > 0 and bh > 0
    out = draw(canvas, mask, contours, style)
    assert out is canvas and out.shape == (h, w, 3) and out.dtype == np.uint8
    if not style.enabled or not mask.any():
        np.testing.assert_array_equal(canvas, before)
    else:  # nothing changes far from the findings
        near = np.zeros((h, w), np.uint8)
        for x, y, bw, bh in det.boxes:
            near[y : y + bh, x : x + bw] = 1
        near = cv2.dilate(near, np.ones((2 * style.thickness + 5,) * 2, np.uint8))
        assert (canvas[near == 0] == before[near == 0]).all()


@FUZZ
@given(
    h=sizes,
    w=sizes,
    text=st.lists(st.text(min_size=0, max_size=30), max_size=5),
    seed=st.integers(0, 2**32 - 1),
)
def test_hud_on_any_canvas(h, w, text, seed):
    canvas = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    assert draw_hud(canvas, text).shape == (h, w, 3)


@FUZZ
@given(
    h=sizes,
    w=sizes,
    n=st.integers(1, 3),
    kind=st.sampled_from(["dark", "noise", "synthetic", "bright"]),
    other=st.tuples(sizes, sizes),
    seed=st.integers(0, 2**32 - 1),
)
def test_fov_and_blackout(h, w, n, kind, other, seed):
    from polypvision.sources.synthetic import SyntheticClip

    rng = np.random.default_rng(seed)
    if kind == "dark":
        frames = [np.full((h, w, 3), 5, np.uint8) for _ in range(n)]
    elif kind == "noise":
        frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]
    elif kind == "bright":
        frames = [np.full((h, w, 3), 200, np.uint8) for _ in range(n)]
    else:
        clip = SyntheticClip(max(w, 2), max(h, 2), seed=int(seed % 7))
        frames = [np.ascontiguousarray(clip.frame(i)[:h, :w]) for i in range(n)]
    fov = detect_fov(frames)
    assert fov.shape == (h, w) and fov.dtype == np.uint8 and set(np.unique(fov)) <= {0, 1}
    bo = Blackout(fov)
    for oh, ow in ((h, w), other):  # the frame size may change mid-stream
        img = rng.integers(1, 256, (oh, ow, 3), dtype=np.uint8)
        keep = img.copy()
        out = bo(img)
        assert out is img and out.shape == (oh, ow, 3)
        inside = cv2.resize(fov, (ow, oh), interpolation=cv2.INTER_NEAREST) > 0
        assert (out[~inside] == 0).all() and (out[inside] == keep[inside]).all()
