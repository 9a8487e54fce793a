"""Broken models through ``polypvision annotate``: one line, exit 2, no output; NaN runs clean.

Missing, corrupt-bytes and contract-less models via the CLI are covered by
``tests/test_annotate.py::test_bad_input_one_line_exit_2_no_output`` ("missing model",
"corrupt model") and ``tests/test_annotate.py::test_contract_missing_model``; the loader-level
checks by ``tests/test_contract.py``. This file adds the mismatches a user meets in practice.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from relhelpers import assert_one_error_line, decode_all, partials, run_cli
from toy_model import build_toy_model, contract_doc


def _models(tmp):
    good = build_toy_model(tmp / "good.onnx", 64)
    half = tmp / "half.onnx"
    half.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return {
        "truncated onnx": (half, "not a loadable ONNX model"),
        "wrong input size": (
            build_toy_model(tmp / "size.onnx", 64, graph_size=32),
            "height 32 but the contract says 64",
        ),
        "wrong layout": (
            build_toy_model(tmp / "layout.onnx", 64, contract=contract_doc(64, layout="NCHW")),
            "the contract does not match this graph",
        ),
        "contract not json": (
            build_toy_model(tmp / "json.onnx", 64, contract="{schema: 1"),
            "not valid JSON",
        ),
        "contract names another output": (
            build_toy_model(
                tmp / "out.onnx",
                64,
                contract=contract_doc(
                    64, output={"name": "prob", "kind": "probability", "threshold": 0.5}
                ),
            ),
            "names output 'prob'",
        ),
        "model is a folder": (tmp, "not a file"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "truncated onnx",
        "wrong input size",
        "wrong layout",
        "contract not json",
        "contract names another output",
        "model is a folder",
    ],
)
def test_broken_model_one_line_exit_2_no_output(tmp_path, clip_small, case):
    model, needle = _models(tmp_path)[case]
    out = tmp_path / "o.mp4"
    r = run_cli("annotate", clip_small, "-o", out, "--model", model, "--quiet")
    assert_one_error_line(r, needle)
    assert not out.exists() and not partials(tmp_path)


def _reshaping_model(path, contract_size: int = 32, graph_size: int = 64):
    """Input H and W are symbolic, so loading cannot see the mismatch, but the graph reshapes to a
    fixed graph_size: with a contract_size contract it folds a batch of 4 into 1, or fails to
    run."""
    inits = [
        numpy_helper.from_array(np.array([-1, graph_size, graph_size, 1], np.int64), "shape"),
        numpy_helper.from_array(np.array([0], np.int64), "s0"),
        numpy_helper.from_array(np.array([1], np.int64), "s1"),
        numpy_helper.from_array(np.array([3], np.int64), "ax"),
    ]
    nodes = [
        helper.make_node("Slice", ["image", "s0", "s1", "ax"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["mask"]),
    ]
    graph = helper.make_graph(
        nodes,
        "reshaping",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", "H", "W", 3])],
        [
            helper.make_tensor_value_info(
                "mask", TensorProto.FLOAT, ["N", graph_size, graph_size, 1]
            )
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"polypvision": json.dumps(contract_doc(contract_size))})
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    "batch, needle", [("4", "returned 1 masks for 4 frames"), ("1", "failed to run")]
)
def test_model_that_only_fails_when_run(tmp_path, clip_small, batch, needle):
    """Found by this suite: with --batch 4 the export silently kept 1 frame in 4 (exit 0); with
    --batch 1 onnxruntime's error went out as a traceback. Now: one line, exit 2, no output."""
    model = _reshaping_model(tmp_path / "reshaping.onnx")
    out = tmp_path / "o.mp4"
    r = run_cli("annotate", clip_small, "-o", out, "--model", model, "--batch", batch, "--quiet")
    assert_one_error_line(r, needle)
    assert not out.exists() and not partials(tmp_path)


def test_nan_model_runs_with_empty_masks(tmp_path, clip_small):
    model = build_toy_model(tmp_path / "nan.onnx", 64, nan=True)
    out, log, masks = tmp_path / "o.mp4", tmp_path / "l.jsonl", tmp_path / "m"
    r = run_cli(
        "annotate",
        clip_small,
        "-o",
        out,
        "--model",
        model,
        "--log",
        log,
        "--masks",
        masks,
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "" and "polyp in 0" in r.stdout
    assert len(decode_all(out)) == 12
    recs = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(recs) == 12
    assert all(
        x["polyp"] is False and x["peak"] == 0.0 and x["area"] == 0.0 and x["boxes"] == []
        for x in recs
    )
    pngs = sorted(masks.glob("*.png"))
    assert len(pngs) == 12
    assert all(cv2.imread(str(p), cv2.IMREAD_UNCHANGED).max() == 0 for p in pngs)


def test_nan_model_in_the_live_pipeline(tmp_path):
    """The same broken model through the live runner: results keep coming, nothing detected."""
    import time

    from polypvision.model.session import Segmenter
    from polypvision.pipeline.live import LiveRunner
    from polypvision.pipeline.processor import FrameProcessor
    from polypvision.sources import LiveSyntheticSource

    seg = Segmenter(build_toy_model(tmp_path / "nan.onnx", 32, nan=True), "cpu")
    src = LiveSyntheticSource(fps=200, width=96, height=72)
    src.open()
    got = []
    runner = LiveRunner(src, FrameProcessor(seg), on_result=got.append)
    runner.start()
    try:
        deadline = time.perf_counter() + 20
        while len(got) < 20 and time.perf_counter() < deadline and runner.error is None:
            time.sleep(0.02)
    finally:
        runner.stop()
    assert runner.error is None and len(got) >= 20
    assert not any(r.detection.present for r in got)
    assert all(np.isfinite(r.detection.peak_probability) for r in got)
