"""Training on several datasets with polyp-free frames: the cache, the mix,
a kill and a resume, the gate."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytestmark = pytest.mark.train
pytest.importorskip("tensorflow")

from tiny_datasets import make_dataset, make_negatives  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _args(data, negatives, out, split_file, **kw):
    base = dict(
        data=[str(d) for d in data],
        negatives=[str(n) for n in negatives],
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
        split_file=str(split_file),
        threads=1,
        resume=False,
        force=False,
        crop_size=None,
        negative_share=0.25,
        loss=None,
    )
    base.update(kw)
    return SimpleNamespace(**base)


def _toy(tmp_path):
    a = make_dataset(tmp_path / "alpha", n_seq=8, per_seq=3)
    b = make_dataset(
        tmp_path / "beta", n_seq=6, per_seq=3, size=(64, 48), seed=1
    )  # another frame size
    n = make_negatives(tmp_path / "neg", n_seq=4, per_seq=3, red_speck=True)
    return [a, b], [n]


def test_cache_serves_decoded_frames_and_notices_changes(tmp_path):
    from polypvision import data as pdata
    from polypvision.training import trainsets

    root = make_dataset(tmp_path / "d", n_seq=3, per_seq=2)
    samples = pdata.discover(root).samples
    cache = tmp_path / "cache"
    imgs, masks = trainsets.load_arrays(samples, cache)
    assert (
        len(list(cache.glob("*.npz"))) == 1
        and imgs.dtype == np.uint8
        and set(np.unique(masks)) <= {0, 1}
    )
    again, _ = trainsets.load_arrays(samples, cache)
    assert np.array_equal(imgs, again)
    import cv2

    img = cv2.imread(str(samples[0].image))
    img[:] = 0
    cv2.imwrite(str(samples[0].image), img)
    os.utime(samples[0].image, ns=(1, 1))  # a changed file is a new key, never a stale cache entry
    changed, _ = trainsets.load_arrays(samples, cache)
    assert changed[0].max() == 0 and len(list(cache.glob("*.npz"))) == 2
    negs = pdata.discover(make_negatives(tmp_path / "n", n_seq=2, per_seq=2), negative=True).samples
    _, neg_masks = trainsets.load_arrays(negs, cache)
    assert not neg_masks.any()


def test_batches_draw_polyp_free_frames_at_their_share():
    import tensorflow as tf

    from polypvision.training import trainsets

    tf.random.set_seed(0)
    pos = (np.full((20, 16, 16, 3), 200, np.uint8), np.ones((20, 16, 16, 1), np.uint8))
    neg = (np.full((5, 16, 16, 3), 10, np.uint8), np.zeros((5, 16, 16, 1), np.uint8))
    ds = trainsets.make_mixed_dataset(
        [(*pos, False), (*neg, True)], 16, 50, (0, 0, 0), (1, 1, 1), seed=0, negative_share=0.3
    )
    empty = [float((m.numpy().reshape(50, -1).max(axis=1) == 0).mean()) for _, m in ds.take(8)]
    assert 0.2 < float(np.mean(empty)) < 0.4


def test_train_on_two_datasets_and_negatives_then_export_with_a_gate(tmp_path, export_args):
    from polypvision.model.session import Segmenter
    from polypvision.training import export, train

    data, negs = _toy(tmp_path)
    out, split = tmp_path / "runs" / "multi", tmp_path / "split.json"
    assert train.run(_args(data, negs, out, split)) == 0
    doc = json.loads(split.read_text())
    assert set(doc["datasets"]) == {"alpha", "beta", "neg"}  # one split file, a part per dataset
    state = json.loads((out / "state.json").read_text())
    assert [d["kind"] for d in state["config"]["data"]] == ["polyp", "polyp", "negative"]
    assert set(state["best_detail"]["per_dataset"]) == {"alpha", "beta"}
    assert state["best_detail"]["negative_frames_flagged"] is not None
    assert (out / state["best_file"]).is_file() and (out / "best.weights.h5").is_file()
    rows = list(csv.DictReader((out / "history.csv").read_text().splitlines()))
    assert "alpha" in rows[-1]["val_per_dataset"] and rows[-1]["val_negative_flagged"] != "n/a"

    # SWA of the two epochs: validated like an epoch, used only if it scores higher, recorded either
    # way.
    assert train.run(_args(data, negs, None, split, swa_of=str(out), swa_last=2)) == 0
    after = json.loads((out / "state.json").read_text())
    assert after["swa"]["epochs"] == [1, 2] and (out / after["swa"]["file"]).is_file()
    assert after["swa"]["used"] == (after["swa"]["val_dice"] > state["best_dice"])
    assert after["best_file"] == (
        after["swa"]["file"] if after["swa"]["used"] else state["best_file"]
    )

    onnx_path = tmp_path / "m.onnx"
    eargs = export_args(out, onnx_path)
    assert export.run(eargs) == 0
    c = Segmenter(onnx_path, provider="cpu").contract
    gate = c.training["gate"]
    assert gate["split"] == "val" and len(gate["grid"]) > 1
    assert (c.output.min_area, c.output.min_peak) == (gate["min_area"], gate["min_peak"])
    assert [d["kind"] for d in c.training["data"]] == ["polyp", "polyp", "negative"]


def test_a_killed_run_resumes_where_it_stopped(tmp_path):
    """SIGKILL mid-run (no clean-up at all), then --resume: epochs continue from the last commit,
    the history has each epoch once, and every file the state names is whole."""
    data, negs = _toy(tmp_path)
    out, split = tmp_path / "runs" / "killed", tmp_path / "split.json"
    cmd = [
        sys.executable,
        "-m",
        "polypvision.cli_train",
        "train",
        "--out",
        str(out),
        "--split-file",
        str(split),
        "--arch",
        "unet",
        "--base-filters",
        "2",
        "--epochs",
        "40",
        "--warmup-epochs",
        "0",
        "--input-size",
        "32",
        "--batch-size",
        "4",
        "--threads",
        "1",
        "--patience",
        "100",
    ]
    for d in data:
        cmd += ["--data", str(d)]
    cmd += ["--negatives", str(negs[0])]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        for line in proc.stdout:  # wait for the second committed epoch, then kill without warning
            if "epoch 2/40 train" in line and "val Dice" in line:
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    state = json.loads((out / "state.json").read_text())
    done = state["epoch"]
    assert done >= 2 and not state.get("finished")
    resumed = subprocess.run(
        cmd[: cmd.index("--epochs")] + ["--epochs", str(done + 2), "--resume"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert f"resumed at epoch {done}" in resumed.stdout
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == done + 2 and state["finished"]
    epochs = [
        int(r["epoch"]) for r in csv.DictReader((out / "history.csv").read_text().splitlines())
    ]
    assert epochs == list(range(1, done + 3))
    for key in ("last", "last_ema", "best_file"):
        assert (out / state[key]).is_file()
    assert not list(out.rglob("*.tmp*")) and not list(
        out.rglob("*.partial*")
    )  # no temporary file left


def test_deep_supervision_trains_side_outputs_and_exports_only_the_main_one(tmp_path, export_args):
    import onnx

    from polypvision.errors import UserError
    from polypvision.training import encoders, export, train

    model = encoders.get("mobilenetv2").build(
        input_size=32, pretrained=False, deep_supervision=True
    )
    assert [o.shape[1:] for o in model.outputs] == [(32, 32, 1)] * 3
    assert encoders.main_output(model).outputs[0].shape[1:] == (32, 32, 1)
    data, negs = _toy(tmp_path)
    out, split = tmp_path / "runs" / "ds", tmp_path / "split.json"
    with pytest.raises(UserError, match="research UNet"):
        train.run(_args(data, negs, out, split, deep_supervision=True))
    args = _args(
        data,
        negs,
        out,
        split,
        arch="mobilenetv2",
        epochs=1,
        warmup_epochs=0,
        deep_supervision=True,
        loss="structure",
    )
    assert train.run(args) == 0
    state = json.loads((out / "state.json").read_text())
    assert state["config"]["deep_supervision"] and state["config"]["loss"] == "structure"
    onnx_path = tmp_path / "ds.onnx"
    eargs = export_args(out, onnx_path, "--no-gate")
    assert export.run(eargs) == 0
    assert [o.name for o in onnx.load(str(onnx_path)).graph.output] == ["mask"]


def test_distillation_adds_the_teachers_map_as_a_soft_target(tmp_path):
    from toy_model import build_toy_model

    from polypvision.training import train, trainsets

    data, negs = _toy(tmp_path)
    teacher = build_toy_model(tmp_path / "teacher.onnx", size=64)
    from polypvision import data as pdata

    imgs, _ = trainsets.load_arrays(pdata.discover(data[0]).samples)
    maps = trainsets.teacher_maps(imgs, teacher, tmp_path / "cache")
    assert maps.shape == (*imgs.shape[:3], 1) and maps.dtype == np.uint8
    red = (
        imgs[..., 0].astype(int) - imgs[..., 1].astype(int) > 100
    )  # the toy teacher sees the red discs
    assert maps[..., 0][red].mean() > 200 and maps[..., 0][~red].mean() < 60
    assert np.array_equal(trainsets.teacher_maps(imgs, teacher, tmp_path / "cache"), maps)  # cached
    out, split = tmp_path / "runs" / "kd", tmp_path / "split.json"
    assert (
        train.run(_args(data, negs, out, split, epochs=1, teacher=str(teacher), distill_weight=0.7))
        == 0
    )
    cfg = json.loads((out / "state.json").read_text())["config"]
    assert cfg["teacher"] == str(teacher.resolve()) and cfg["distill_weight"] == 0.7


def test_background_crops_are_polyp_free_squares_of_the_polyp_frames():
    from polypvision.training import trainsets

    h, w = 96, 128
    imgs = np.zeros((4, h, w, 3), np.uint8)
    imgs[..., 0] = np.arange(w, dtype=np.uint8)[None, None, :]  # a horizontal ramp: where from
    masks = np.zeros((4, h, w, 2), np.uint8)  # ground truth and a teacher's map
    masks[0, 30:60, 90:120, 0] = 1  # polyp on the right: the free square is on the left
    masks[1, 10:90, 10:118, 0] = 1  # polyp fills the frame: no square big enough
    masks[3, 40:50, 0:20, 0] = 1  # small polyp on the left: a square on the right
    masks[..., 1] = 77
    ci, cm = trainsets.background_crops(imgs, masks, seed=0)
    # frame 2 holds no polyp pixel (nothing to avoid): skipped like frame 1
    assert ci.shape == (2, h, w, 3) and cm.shape == (2, h, w, 2)
    assert not cm[..., 0].any() and (cm[..., 1] == 77).all()  # teacher's map kept
    left, right = ci[0, ..., 0], ci[1, ..., 0]
    assert left.max() < 90 - trainsets.CROP_MARGIN  # all from left of the polyp's margin
    assert right.min() >= 20 + trainsets.CROP_MARGIN - 1
    again, _ = trainsets.background_crops(imgs, masks, seed=0)
    assert np.array_equal(again, ci)  # seeded: a resumed run cuts the same squares

    groups = trainsets.with_background_crops([(imgs, masks, False), (imgs[:1], masks[:1], True)], 0)
    assert [len(g[0]) for g in groups] == [4, 1, 2] and [g[2] for g in groups] == [
        False,
        True,
        True,
    ]


def test_a_run_with_background_crops_trains_on_them_and_records_it(tmp_path, capsys):
    from polypvision.training import train

    data, negs = _toy(tmp_path)
    out, split = tmp_path / "runs" / "bg", tmp_path / "split.json"
    assert train.run(_args(data, negs, out, split, epochs=1, background_crops=True)) == 0
    said = re.search(r"background crops: (\d+) polyp-free squares", capsys.readouterr().out)
    assert said and int(said.group(1)) > 0
    state = json.loads((out / "state.json").read_text())
    assert state["config"]["background_crops"] is True


def test_a_presence_head_run_exports_mask_and_presence_with_a_decision_chosen_on_validation(
    tmp_path, export_args
):
    import onnx

    from polypvision.model.session import Segmenter
    from polypvision.training import export, train

    data, negs = _toy(tmp_path)
    out, split = tmp_path / "runs" / "pres", tmp_path / "split.json"
    args = _args(data, negs, out, split, arch="mobilenetv2", epochs=1, presence_head=True)
    assert train.run(args) == 0
    onnx_path = tmp_path / "pres.onnx"
    eargs = export_args(out, onnx_path)
    assert export.run(eargs) == 0
    assert [o.name for o in onnx.load(str(onnx_path)).graph.output] == ["mask", "presence"]
    c = Segmenter(onnx_path, provider="cpu").contract
    d = c.output.decision
    assert c.output.presence == "presence" and d.chosen_on.startswith("validation")
    assert d.validation["false_alarm_max"] <= d.target_false_alarm
    assert any(x["score"] == "presence" for x in c.training["decision_candidates"])
