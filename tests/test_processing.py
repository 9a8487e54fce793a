from __future__ import annotations

import numpy as np
import pytest

from polypvision.model.contract import InputSpec
from polypvision.model.processing import Preprocessor, to_bgr, to_probabilities


def spec(**kw) -> InputSpec:
    base = dict(
        name="image",
        layout="NHWC",
        height=4,
        width=6,
        color="RGB",
        resize="bilinear",
        scale=1 / 255,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
    )
    base.update(kw)
    return InputSpec(**base)


def test_preprocess_matches_the_contract_formula():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)  # already at model size: no resize
    s = spec()
    x = Preprocessor(s, 2)([img, img])
    rgb = img[..., ::-1].astype(np.float32)
    want = (rgb * s.scale - np.array(s.mean, np.float32)) / np.array(s.std, np.float32)
    assert x.shape == (2, 4, 6, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], want, rtol=1e-5, atol=1e-5)


def test_bgr_and_nchw():
    img = np.zeros((4, 6, 3), np.uint8)
    img[..., 0] = 255  # blue in BGR
    x = Preprocessor(spec(color="BGR", layout="NCHW", mean=(0, 0, 0), std=(1, 1, 1)))([img])
    assert x.shape == (1, 3, 4, 6)
    assert np.allclose(x[0, 0], 1.0) and np.allclose(x[0, 2], 0.0)


def test_buffers_are_reused_and_grow():
    p = Preprocessor(spec(), 1)
    a = p([np.zeros((10, 10, 3), np.uint8)])
    b = p([np.zeros((10, 10, 3), np.uint8)])
    assert np.shares_memory(a, b)
    c = p([np.zeros((10, 10, 3), np.uint8)] * 3)
    assert c.shape[0] == 3


@pytest.mark.parametrize(
    "img",
    [
        np.zeros((5, 7), np.uint8),
        np.zeros((5, 7, 1), np.uint8),
        np.zeros((5, 7, 4), np.uint8),
        np.zeros((5, 7, 3), np.uint16),
        np.zeros((5, 7, 3), np.float32),
    ],
)
def test_to_bgr_normalises_odd_frames(img):
    out = to_bgr(img)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8


def test_to_probabilities_shapes_and_logits():
    raw = np.zeros((2, 3, 3, 1), np.float32)
    assert to_probabilities(raw, "probability").shape == (2, 3, 3)
    assert np.allclose(to_probabilities(raw, "logit"), 0.5)
    assert to_probabilities(np.zeros((2, 1, 3, 3)), "probability").shape == (2, 3, 3)
    with pytest.raises(ValueError):
        to_probabilities(np.zeros((3, 3)), "probability")
