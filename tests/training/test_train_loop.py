"""``polypvision train`` end to end on a tiny model: checkpoints, history, resume,
export, evaluate."""

from __future__ import annotations

import csv
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

pytestmark = pytest.mark.train
pytest.importorskip("tensorflow")

from tiny_datasets import make_dataset  # noqa: E402


def _args(data, out, split_file, **kw):
    base = dict(
        data=str(data),
        out=str(out),
        arch="unet",
        base_filters=2,
        epochs=2,
        warmup_epochs=0,
        input_size=32,
        batch_size=4,
        lr=3e-3,
        finetune_lr=None,
        patience=None,
        ema_decay=0.9,
        seed=0,
        split_file=None if split_file is None else str(split_file),
        threads=1,
        resume=False,
        force=False,
        crop_size=None,
    )
    base.update(kw)
    return SimpleNamespace(**base)


def test_augment_keeps_mask_binary_and_shape():
    import tensorflow as tf

    from polypvision.training.augment import augment

    tf.random.set_seed(0)
    img = tf.constant(np.random.default_rng(0).integers(0, 255, (40, 48, 3)), tf.uint8)
    mask = tf.constant((np.random.default_rng(1).random((40, 48, 1)) > 0.5).astype(np.uint8))
    for _ in range(5):
        a, m = augment(img, mask, 32)
        assert a.shape == (32, 32, 3) and m.shape == (32, 32, 1)
        assert set(np.unique(m.numpy())) <= {0.0, 1.0}
        assert float(tf.reduce_min(a)) >= 0.0 and float(tf.reduce_max(a)) <= 1.0


def test_crop_view_keeps_the_inference_zoom():
    """--crop-size patches cover view x the side a full-size box would (same zoom as inference)."""
    import tensorflow as tf

    from polypvision.training.augment import _random_box, augment

    tf.random.set_seed(1)
    for _ in range(50):
        full = _random_box(tf.constant(288), tf.constant(384), 0.55).numpy()
        half = _random_box(tf.constant(288), tf.constant(384), 0.55, view=0.5).numpy()
        assert 0.55 * 0.86 <= full[2] - full[0] <= 1.0 and 0.55 * 0.86 <= full[3] - full[1] <= 1.0
        assert (
            0.55 * 0.86 * 0.5 <= half[2] - half[0] <= 0.5 + 1e-6 and half[3] - half[1] <= 0.5 + 1e-6
        )
        assert half[0] >= 0.0 and half[2] <= 1.0 + 1e-6 and half[1] >= 0.0 and half[3] <= 1.0 + 1e-6
    img = tf.zeros((40, 48, 3), tf.uint8)
    a, m = augment(img, tf.zeros((40, 48, 1), tf.uint8), 16, view=0.5)
    assert a.shape == (16, 16, 3) and m.shape == (16, 16, 1)


def test_crops_find_the_polyp_most_of_the_time():
    """Patches are placed on a polyp pixel FOREGROUND_P of the time, so most contain polyp."""
    import tensorflow as tf

    from polypvision.training.augment import FOREGROUND_P, _random_box

    tf.random.set_seed(2)
    mask = np.zeros((288, 384, 1), np.uint8)
    mask[250:270, 10:30] = 1  # a small polyp in a corner: a random 1/4-area patch rarely holds it
    m = tf.constant(mask)
    hits = 0
    for _ in range(200):
        y0, x0, y1, x1 = _random_box(
            tf.constant(288), tf.constant(384), 0.55, view=0.5, mask=m
        ).numpy()
        r0, r1, c0, c1 = (
            int(y0 * 288),
            int(np.ceil(y1 * 288)),
            int(x0 * 384),
            int(np.ceil(x1 * 384)),
        )
        hits += bool(mask[r0:r1, c0:c1].any())
        assert 0.0 <= y0 < y1 <= 1.0 + 1e-6 and 0.0 <= x0 < x1 <= 1.0 + 1e-6
    assert hits / 200 >= FOREGROUND_P - 0.1


@pytest.mark.parametrize(
    "kw, says",
    [
        (
            dict(input_size=100),
            "--input-size 100: this architecture needs a positive multiple of 8",
        ),
        (
            dict(input_size=32, crop_size=12),
            "--crop-size 12: must be a multiple of 8 below --input-size 32",
        ),
        (dict(input_size=32, crop_size=32), "--crop-size 32"),
        (dict(arch="mobilenetv2", input_size=48), "multiple of 32"),
    ],
)
def test_bad_training_sizes_are_refused_before_any_work(tmp_path, kw, says):
    from polypvision.errors import UserError
    from polypvision.training import train

    out = tmp_path / "runs" / "bad"
    with pytest.raises(UserError, match=re.escape(says)):
        train.run(_args(tmp_path / "no-data-needed", out, tmp_path / "split.json", **kw))
    assert not out.exists()  # nothing written


def test_train_resume_export_evaluate(tmp_path, export_args):
    from polypvision import evaluate as ev
    from polypvision.errors import UserError
    from polypvision.training import export, train

    data = make_dataset(tmp_path / "toydb", n_seq=8, per_seq=3)
    out, split = tmp_path / "runs" / "tiny", tmp_path / "split.json"
    assert train.run(_args(data, out, split)) == 0
    state = json.loads((out / "state.json").read_text())
    assert (
        state["epoch"] == 2
        and (out / "last.weights.h5").is_file()
        and (out / "best.weights.h5").is_file()
    )
    assert json.loads(split.read_text())["leaky"] is False
    with pytest.raises(UserError, match="--resume"):
        train.run(_args(data, out, split))  # refuses to clobber a run
    # The resumed epoch trains on 16x16 crops at the zoom of 32x32 and validates at 32x32.
    assert (
        train.run(_args(data, out, split, resume=True, epochs=3, input_size=None, crop_size=16))
        == 0
    )
    rows = list(csv.DictReader((out / "history.csv").read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 3 and 0.0 < state["threshold"] < 1.0
    assert state["config"]["crop_size"] == 16 and state["config"]["input_size"] == 32

    onnx_path = tmp_path / "models" / "tiny.onnx"
    eargs = export_args(out, onnx_path)
    assert export.run(eargs) == 0
    r = ev.evaluate(onnx_path, data, split="test", split_file=split, batch=4)
    assert r["images"] > 0 and 0.0 <= r["mean"]["dice"] <= 1.0
    from polypvision.model.session import Segmenter

    c = Segmenter(onnx_path, provider="cpu").contract
    assert (
        c.input.height == 256
        and c.training["epochs"] == 3
        and c.training["split"].endswith("split.json")
    )
