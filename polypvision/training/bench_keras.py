"""ONNX Runtime against Keras on the same weights (for ``polypvision bench --keras``).

The shipped ONNX file holds no Keras graph, so the model is rebuilt from the contract's
architecture (same layers, same widths) with freshly initialised weights, exported to ONNX
in memory with the project's own exporter, and the three runtimes are timed at batch 1 on
identical weights and inputs: Keras ``predict``, a compiled ``tf.function``, and
onnxruntime with the session options the app uses. Speed does not depend on the weight values.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def _timeit(fn, x, reps: int) -> float:
    fn(x)  # warm-up (tracing, allocation)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn(x)
    return (time.perf_counter() - t0) / reps


def keras_rows(seg, frames, reps: int = 20) -> list[dict[str, Any]]:
    import onnxruntime as ort
    import tensorflow as tf

    from polypvision.training import encoders
    from polypvision.training.export import to_onnx

    c = seg.contract
    family = next((k for k in encoders.REGISTRY if c.architecture.startswith(k)), None)
    if family is None:
        return []  # an architecture this version cannot rebuild in Keras: no comparison row
    arch = encoders.get(family)
    size = c.input.height
    model = arch.build(input_size=size, base_filters=c.base_filters or 16, pretrained=False)
    x = seg._pre([f.image for f in frames[:1]]).copy()
    proto = to_onnx(model, size)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    out_name = sess.get_outputs()[0].name
    in_name = sess.get_inputs()[0].name
    diff = float(np.abs(sess.run([out_name], {in_name: x})[0] - model.predict(x, verbose=0)).max())
    fn = tf.function(lambda t: model(t, training=False), jit_compile=False)
    xt = tf.constant(x)
    t_predict = _timeit(lambda a: model.predict(a, batch_size=1, verbose=0), x, reps)
    t_tf = _timeit(lambda a: fn(a).numpy(), xt, reps)
    t_ort = _timeit(lambda a: sess.run([out_name], {in_name: a}), x, reps)
    name = f"{c.architecture} rebuilt, batch 1, same weights (max |diff| {diff:.1e})"
    rows = []
    for label, t in (
        ("Keras predict", t_predict),
        ("Keras tf.function", t_tf),
        ("onnxruntime", t_ort),
    ):
        rows.append(
            {
                "stage": "keras vs onnx",
                "detail": f"{label}: {name}",
                "fps": 1.0 / t,
                "ms_per_frame": 1000.0 * t,
                "extra": {"speedup_of_onnx": t / t_ort},
            }
        )
    return rows
