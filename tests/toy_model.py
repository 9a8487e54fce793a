"""A tiny, untrained ONNX model that tests build on the fly (never shipped, never called trained).

It computes sigmoid(gain * (R - G) + bias) per pixel: real onnxruntime, real contract, no weights
file, deterministic output. Options break it in the ways the loader must catch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def contract_doc(size: int = 64, layout: str = "NHWC", **overrides) -> dict:
    doc = {
        "schema": 1,
        "name": "toy-redness",
        "architecture": "toy",
        "base_filters": None,
        "input": {
            "name": "image",
            "layout": layout,
            "height": size,
            "width": size,
            "color": "RGB",
            "resize": "bilinear",
            "scale": 1 / 255,
            "mean": [0.0, 0.0, 0.0],
            "std": [1.0, 1.0, 1.0],
        },
        "output": {"name": "mask", "kind": "probability", "threshold": 0.5},
        "training": {"note": "untrained test fixture"},
    }
    doc.update(overrides)
    return doc


def build_toy_model(
    path: Path,
    size: int = 64,
    *,
    contract: dict | None | str = "default",
    graph_size: int | None = None,
    nan: bool = False,
    gain: float = 12.0,
    bias: float = -2.0,
    layout: str = "NHWC",
    batch: int | str = "N",
    presence: bool = False,
    presence_gain: float = 1.0,
) -> Path:
    """``batch``: the graph's batch dimension, symbolic ("N") or fixed (an int). ``presence``:
    a second output ``presence`` (N, 1), the frame's highest redness probability (a stand-in
    for a trained frame-level head)."""
    gs = graph_size or size
    c_axis = 3 if layout == "NHWC" else 1
    shape = [batch, gs, gs, 3] if layout == "NHWC" else [batch, 3, gs, gs]
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "s0"),
        numpy_helper.from_array(np.array([1], np.int64), "s1"),
        numpy_helper.from_array(np.array([2], np.int64), "s2"),
        numpy_helper.from_array(np.array([c_axis], np.int64), "ax"),
        numpy_helper.from_array(np.array(gain, np.float32), "gain"),
        numpy_helper.from_array(np.array(bias, np.float32), "bias"),
    ]
    nodes = [
        helper.make_node("Slice", ["image", "s0", "s1", "ax"], ["r"]),
        helper.make_node("Slice", ["image", "s1", "s2", "ax"], ["g"]),
        helper.make_node("Sub", ["r", "g"], ["d"]),
        helper.make_node("Mul", ["d", "gain"], ["m"]),
        helper.make_node("Add", ["m", "bias"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
    ]
    last = "p"
    if nan:
        inits.append(numpy_helper.from_array(np.array(np.nan, np.float32), "nanv"))
        nodes.append(helper.make_node("Mul", ["p", "nanv"], ["pn"]))
        last = "pn"
    nodes.append(helper.make_node("Identity", [last], ["mask"]))
    out_shape = [batch, gs, gs, 1] if layout == "NHWC" else [batch, 1, gs, gs]
    outputs = [helper.make_tensor_value_info("mask", TensorProto.FLOAT, out_shape)]
    if presence:
        nodes.append(helper.make_node("ReduceMax", [last], ["presence4"], axes=[1, 2, 3]))
        inits.append(numpy_helper.from_array(np.array(presence_gain, np.float32), "pgain"))
        nodes.append(helper.make_node("Mul", ["presence4", "pgain"], ["presence4g"]))
        inits.append(numpy_helper.from_array(np.array([-1, 1], np.int64), "pshape"))
        nodes.append(helper.make_node("Reshape", ["presence4g", "pshape"], ["presence"]))
        outputs.append(helper.make_tensor_value_info("presence", TensorProto.FLOAT, [batch, 1]))
    graph = helper.make_graph(
        nodes,
        "toy",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if contract == "default":
        contract = contract_doc(size, layout)
    if contract is not None:
        text = contract if isinstance(contract, str) else json.dumps(contract)
        helper.set_model_props(model, {"polypvision": text})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
