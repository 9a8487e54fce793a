"""``polypvision gate``: a frame-level presence output fitted on an exported model's own features.

Why (docs/decisions.md, "A presence gate on the shipped default's own features"): a presence
head trained jointly with the mask cost segmentation, while the shipped model's deepest features
already tell a polyp from a fold edge or stool that its mask outlines. So the gate is fitted on
the **frozen** model: the new nodes only read tensors the graph already computes (global average
and max pooling of four of them, plus the mask's peak and its share over the threshold) and end
in one ``MatMul`` + ``Sigmoid``, a new output ``presence``. The mask is bit for bit the base
model's (checked before anything is written).

Steps: the feature graph -> pooled features of the training frames (each also mirrored) and the
validation frames -> L2-regularised logistic regression (numpy Newton-CG, classes weighted
equally), C chosen on validation -> standardisation and weights folded into the graph -> the frame
decision chosen on validation by export's rule (:func:`polypvision.operating.choose_decision`) ->
the contract -> an atomic write. Only ``onnx``, ``onnxruntime`` and numpy: no TensorFlow.

With ``--cross-fit K`` (:mod:`polypvision.training.crossfit`) the validation frames join the fit
too: C and the decision are chosen on out-of-fold scores of K validation folds, and the written
gate is fitted on training and all of validation.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polypvision.errors import UserError
from polypvision.training import crossfit

FEATURES = "gate/features"
# Part of the feature cache's key: bump it when what a row holds changes (the pooled tensors,
# their order, the mask statistics, the squares' cut), so no run reuses features of another kind.
FEATURE_VERSION = 1
PRESENCE = "presence"
C_GRID = (0.001, 0.01, 0.1)
ACTIVATIONS = ("Relu", "Clip")


class GateError(UserError):
    """The model cannot take a gate (its graph is not a Resize-decoder UNet, or it has one)."""


# -- where the features are -------------------------------------------------------------------
def feature_tensors(proto) -> dict[str, str]:
    """The tensors the gate pools, found by the graph's shape rather than by layer names, so any
    encoder UNet whose decoder upsamples with ``Resize`` works:

    - ``expanded``: the second activation walking back from the encoder's output (in an
      inverted-residual encoder, the last block's expanded features, its widest tensor);
    - ``encoder``: what the decoder's first ``Resize`` upsamples (the bottleneck);
    - ``decoder_first``: the last activation before the decoder's second ``Resize``;
    - ``decoder_last``: the graph's last activation (the finest decoder stage).
    """
    nodes = list(proto.graph.node)
    resizes = [i for i, n in enumerate(nodes) if n.op_type == "Resize"]
    if len(resizes) < 2:
        raise GateError(
            "gate: the model's decoder does not upsample with Resize (it is not one of the "
            "encoder UNets, e.g. efficientnet-lite0 or mobilenetv2); no gate can be fitted"
        )
    producer = {o: n for n in nodes for o in n.output}
    encoder = nodes[resizes[0]].input[0]
    acts: list[str] = []
    t = encoder
    while len(acts) < 2 and t in producer:
        n = producer[t]
        if n.op_type in ACTIVATIONS:
            acts.append(n.output[0])
        t = n.input[0]
    first = [n.output[0] for n in nodes[resizes[0] : resizes[1]] if n.op_type in ACTIVATIONS]
    last = [n.output[0] for n in nodes[resizes[1] :] if n.op_type in ACTIVATIONS]
    if len(acts) < 2 or not first or not last:
        raise GateError("gate: the model's encoder or decoder has no activations to pool")
    return {
        "expanded": acts[1],
        "encoder": encoder,
        "decoder_first": first[-1],
        "decoder_last": last[-1],
    }


def _const(name: str, value: np.ndarray):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value), name)


def add_features(proto, tensors: Sequence[str], mask: str, threshold: float):
    """A copy of ``proto`` with one more output, :data:`FEATURES` (N, D): the global average
    and max of each tensor (NCHW) and the mask's peak and share over ``threshold``."""
    import onnx
    from onnx import TensorProto, helper

    out = onnx.ModelProto()
    out.CopyFrom(proto)
    g = out.graph
    if any(o.name == PRESENCE for o in g.output):
        raise GateError("gate: the model already has a presence output")
    parts: list[str] = []
    for i, t in enumerate(tensors):
        for op in ("GlobalAveragePool", "GlobalMaxPool"):
            pooled = f"gate/{i}/{op}"
            g.node.append(helper.make_node(op, [t], [pooled], name=pooled))
            g.node.append(helper.make_node("Flatten", [pooled], [pooled + "/flat"], axis=1))
            parts.append(pooled + "/flat")
    g.initializer.append(_const("gate/threshold", np.array(threshold, np.float32)))
    g.node.extend(
        [
            helper.make_node("Flatten", [mask], ["gate/mask"], axis=1),
            helper.make_node("ReduceMax", ["gate/mask"], ["gate/peak"], axes=[1], keepdims=1),
            helper.make_node("Greater", ["gate/mask", "gate/threshold"], ["gate/over"]),
            helper.make_node("Cast", ["gate/over"], ["gate/overf"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMean", ["gate/overf"], ["gate/area"], axes=[1], keepdims=1),
            helper.make_node("Concat", [*parts, "gate/peak", "gate/area"], [FEATURES], axis=1),
        ]
    )
    g.output.append(helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, None))
    return out


def add_presence(featured, weight: np.ndarray, bias: float):
    """``featured`` (from :func:`add_features`) with the features turned into the frame-level
    ``presence`` (N, 1) = sigmoid(features @ weight + bias) in place of the features output."""
    import onnx
    from onnx import TensorProto, helper

    out = onnx.ModelProto()
    out.CopyFrom(featured)
    g = out.graph
    keep = [o for o in g.output if o.name != FEATURES]
    del g.output[:]
    g.output.extend(keep)
    g.initializer.append(_const("gate/weight", weight.astype(np.float32).reshape(-1, 1)))
    g.initializer.append(_const("gate/bias", np.array([bias], np.float32)))
    g.node.extend(
        [
            helper.make_node("MatMul", [FEATURES, "gate/weight"], ["gate/logit0"]),
            helper.make_node("Add", ["gate/logit0", "gate/bias"], ["gate/logit"]),
            helper.make_node("Sigmoid", ["gate/logit"], [PRESENCE], name="gate/presence"),
        ]
    )
    g.output.append(helper.make_tensor_value_info(PRESENCE, TensorProto.FLOAT, ["N", 1]))
    onnx.checker.check_model(out)
    return out


# -- the classifier -----------------------------------------------------------------------------
@dataclasses.dataclass
class Logistic:
    """Weights on standardised features; :meth:`folded` gives them on the raw features."""

    mean: np.ndarray
    std: np.ndarray
    w: np.ndarray
    b: float
    c: float
    iterations: int

    def folded(self) -> tuple[np.ndarray, float]:
        w = self.w / self.std
        return w, float(self.b - np.dot(w, self.mean))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        w, b = self.folded()
        return 1.0 / (1.0 + np.exp(-(x.astype(np.float64) @ w + b)))


def _cg(hv: Callable[[np.ndarray], np.ndarray], g: np.ndarray, iters: int = 60) -> np.ndarray:
    """Conjugate gradients for H s = g (H symmetric positive definite, given as products)."""
    s = np.zeros_like(g)
    r = g.copy()
    p = r.copy()
    rr = float(r @ r)
    for _ in range(iters):
        hp = hv(p)
        alpha = rr / float(p @ hp)
        s += alpha * p
        r -= alpha * hp
        rr_new = float(r @ r)
        if rr_new <= 1e-20 * max(1.0, float(g @ g)):
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return s


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float, max_iter: int = 100) -> Logistic:
    """Minimise sum_i s_i * logloss_i + ||w||^2 / (2c) on standardised features (intercept not
    penalised; each class weighs the same in total, like scikit-learn's ``balanced``)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if y.min() == y.max():
        raise GateError("gate: the training frames are all of one kind; it needs both")
    mean = x.mean(0)
    std = x.std(0) + 1e-6
    xb = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    n_pos = y.sum()
    s = np.where(y > 0, len(y) / (2 * n_pos), len(y) / (2 * (len(y) - n_pos)))
    reg = np.full(xb.shape[1], 1.0 / c)
    reg[-1] = 0.0
    w = np.zeros(xb.shape[1])

    def loss(w: np.ndarray) -> float:
        z = xb @ w
        return float(s @ (np.logaddexp(0.0, z) - y * z) + 0.5 * (reg * w) @ w)

    f = loss(w)
    steps = 0
    for _ in range(max_iter):
        steps += 1
        p = 1.0 / (1.0 + np.exp(-(xb @ w)))
        g = xb.T @ (s * (p - y)) + reg * w
        if np.linalg.norm(g) <= 1e-6 * len(y):
            break
        d = s * p * (1 - p)
        step = _cg(lambda v, d=d: xb.T @ (d * (xb @ v)) + reg * v + 1e-10 * v, g)
        t = 1.0
        while True:  # backtracking (Armijo) on the regularised loss
            f_new = loss(w - t * step)
            if f_new <= f - 1e-4 * t * float(g @ step) or t < 1e-8:
                break
            t *= 0.5
        w = w - t * step
        if f - f_new <= 1e-10 * max(1.0, abs(f)):
            f = f_new
            break
        f = f_new
    return Logistic(mean, std, w[:-1], float(w[-1]), c, steps)


def sensitivity_at(
    scores: dict[str, np.ndarray], polyp: Sequence[str], free: Sequence[str], target: float
) -> tuple[float, float]:
    """The operating threshold of per-frame ``scores`` (every polyp-free dataset alarmed on at
    most ``target`` of its frames) and the mean share of polyp frames over the polyp datasets
    at it: the export's own rule (:func:`polypvision.operating.threshold_for`), each frame a
    still (no persistence)."""
    from polypvision.decision import DecisionSpec
    from polypvision.operating import ScoredFrame, decide, rates, threshold_for

    records = [
        ScoredFrame(
            dataset=name,
            stem=f"{name}-{i}",
            clip=f"{name}-{i}",
            order=0,
            polyp=name in polyp,
            presence=float(v),
            region_peak=1.0,  # the score is the presence alone
            width=1,
            height=1,
        )
        for name in (*polyp, *free)
        for i, v in enumerate(scores[name])
    ]
    thr = threshold_for(records, "presence", 1, 1, target)
    return thr, float(rates(records, decide(records, DecisionSpec("presence", thr)))["sensitivity"])


# -- reading the frames --------------------------------------------------------------------------
def _place(lo_box: int, hi_box: int, side: int, n: int, rng: np.random.Generator) -> int:
    """Start of a ``side`` span inside [0, n) holding [lo_box, hi_box] at a seeded position;
    centred on the box when the box is the longer."""
    lo, hi = max(0, hi_box - side + 1), min(lo_box, n - side)
    if lo > hi:
        return int(min(max((lo_box + hi_box) // 2 - side // 2, 0), n - side))
    return int(rng.integers(lo, hi + 1))


def polyp_square(mask: np.ndarray, side: int, rng: np.random.Generator) -> tuple[int, int, int]:
    """(top, left, side) of a square of ``side`` holding the polyp's bounding box at a seeded
    position (the smallest square holding it when the box is larger, centred on the box where
    the frame is too short to hold it), inside the frame."""
    h, w = mask.shape[:2]
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    side = min(max(side, y1 - y0 + 1, x1 - x0 + 1), h, w)
    return _place(y0, y1, side, h, rng), _place(x0, x1, side, w, rng), side


def crop_pairs(
    images: Sequence[np.ndarray], masks: Sequence[np.ndarray], rng: np.random.Generator
) -> tuple[list[np.ndarray], list[int]]:
    """Squares at the crop scale from polyp frames, both kinds from the same frame: the
    polyp-free square ``train --background-crops`` cuts (label 0) and one of the same side
    holding the polyp (label 1), so neither the centre's look nor the zoom tells a polyp."""
    from polypvision.training.trainsets import free_square

    out: list[np.ndarray] = []
    labels: list[int] = []
    for im, m in zip(images, masks):
        free = free_square(m, rng)
        if free is None:
            continue
        cy, cx, side = free
        top, left, pside = polyp_square(m, side, rng)
        out += [im[cy : cy + side, cx : cx + side], im[top : top + pside, left : left + pside]]
        labels += [0, 1]
    return out, labels


def extract(
    session, contract, samples, mirror: bool, crops: bool = False, batch: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features (and polyp labels) of ``samples`` as the app preprocesses them; with
    ``crops``, of the squares :func:`crop_pairs` cuts from them instead (seeded)."""
    from polypvision import data as pdata
    from polypvision.model.processing import Preprocessor

    pre = Preprocessor(contract.input, batch * 2)
    name = contract.input.name
    rng = np.random.default_rng(0)
    xs: list[np.ndarray] = []
    ys: list[int] = []
    for start in range(0, len(samples), batch):
        pairs = [pdata.load_pair(s) for s in samples[start : start + batch]]
        if crops:
            images, labels = crop_pairs([i for i, _ in pairs], [m for _, m in pairs], rng)
            if not images:
                continue
        else:
            images, labels = [i for i, _ in pairs], [int(m.any()) for _, m in pairs]
        views = (
            [images, [np.ascontiguousarray(im[:, ::-1]) for im in images]] if mirror else [images]
        )
        for view in views:
            x = pre(view)
            xs.append(session.run([FEATURES], {name: x})[0].astype(np.float32))
            ys += labels
    if not xs:
        return np.zeros((0, 0), np.float32), np.zeros(0, int)
    return np.concatenate(xs), np.asarray(ys)


def _cached_extract(session, contract, samples, mirror: bool, model_sha: str, crops: bool = False):
    """:func:`extract`, kept on disk by the model's and the frames' identity: a second run (a
    new C grid, a crash after reading) does not read the frames through the model again."""
    import json

    from polypvision.fileio import atomic_path
    from polypvision.training.trainsets import cache_root

    h = hashlib.sha256(
        json.dumps([model_sha, mirror, FEATURE_VERSION] + (["crops"] if crops else [])).encode()
    )
    for smp in samples:
        for path in (smp.image, smp.mask):
            if path is not None:
                st = Path(path).stat()
                h.update(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode())
    file = cache_root().parent / "gate-cache" / f"{h.hexdigest()[:32]}.npz"
    if file.is_file():
        with np.load(file) as z:
            return z["x"], z["y"]
    x, y = extract(session, contract, samples, mirror, crops)
    file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(file, ".npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, x=x, y=y)
    return x, y


def run(args: argparse.Namespace) -> int:
    import onnx

    from polypvision import data as pdata
    from polypvision.decision import DecisionSpec
    from polypvision.model.contract import ModelContract
    from polypvision.model.runtime import import_onnxruntime
    from polypvision.operating import TARGET_FALSE_ALARM
    from polypvision.training.export import (
        decision_from_records,
        set_contract,
        with_decision,
        write_atomic,
    )

    t0 = time.perf_counter()
    folds_asked = int(getattr(args, "cross_fit", 0) or 0)
    if folds_asked == 1 or folds_asked < 0:
        raise GateError("gate: --cross-fit needs 2 or more folds (or 0 for no cross-fitting)")
    base_path = Path(args.model)
    if not base_path.is_file():
        raise GateError(f"gate: {base_path} does not exist; give an exported .onnx model")
    out_dir = Path(args.output).resolve().parent
    try:  # before minutes of reading frames, not after
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GateError(
            f"gate: cannot create {out_dir} ({exc.strerror}); choose another -o"
        ) from None
    try:  # a file can really be made there (permission bits say nothing to root)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise GateError(
            f"gate: cannot write in {out_dir} ({exc.strerror}); choose another -o"
        ) from None
    try:
        proto = onnx.load(str(base_path))
    except Exception as exc:  # protobuf's DecodeError and friends: not an ONNX file
        raise GateError(
            f"gate: {base_path} is not a readable ONNX model ({type(exc).__name__}); give an "
            "exported .onnx model"
        ) from None
    model_sha = hashlib.sha256(base_path.read_bytes()).hexdigest()
    meta = {p.key: p.value for p in proto.metadata_props}
    if "polypvision" not in meta:
        raise GateError(f"gate: {base_path} carries no polypvision contract; export it first")
    base = ModelContract.from_json(meta["polypvision"])
    if base.output.presence:
        raise GateError(f"gate: {base_path.name} already has a presence output")
    if base.output.kind != "probability":
        raise GateError("gate: the model's mask must be a probability map")
    tensors = feature_tensors(proto)
    featured = add_features(proto, list(tensors.values()), base.output.name, base.output.threshold)

    specs = pdata.specs_from(args.data, args.negatives)
    sds = pdata.load_splits(specs, args.split_file, create=False)
    ort = import_onnxruntime()
    opts = ort.SessionOptions()
    if args.threads:
        opts.intra_op_num_threads = args.threads
    session = ort.InferenceSession(
        featured.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    xs, ys, val = [], [], {}
    counts: dict[str, dict[str, int]] = {}
    for sd in sds:
        tr = sd.samples("train")
        va = sd.samples("val")
        t = time.perf_counter()
        x, y = _cached_extract(session, base, tr, True, model_sha)
        xs.append(x)
        ys.append(y)
        val[sd.name] = _cached_extract(session, base, va, False, model_sha)
        counts[sd.name] = {"train": len(tr), "val": len(va)}
        if args.crops and not sd.negative:
            cx, cy = _cached_extract(session, base, tr, True, model_sha, crops=True)
            xs.append(cx)
            ys.append(cy)
            counts[sd.name]["train_squares"] = len(cy) // 2  # mirrored: each square twice
        print(
            f"[gate] {sd.name}: {len(tr)} training frames (and their mirror images), "
            f"{len(va)} validation frames read in {time.perf_counter() - t:.0f} s",
            flush=True,
        )
    polyp = [sd.name for sd in sds if not sd.negative]
    free = [sd.name for sd in sds if sd.negative]
    k = folds_asked
    folds: dict[str, list[list[int]]] = {}
    extra: list[list[tuple[np.ndarray, np.ndarray]]] = []  # per fold: its frames to fit on
    if k:
        folds, extra, squares = _fold_features(session, base, sds, k, model_sha, args.crops)
        for sd in sds:
            counts[sd.name]["val_folds"] = [len(f) for f in folds[sd.name]]
            if sd.name in squares:
                counts[sd.name]["val_squares"] = squares[sd.name]

    def fit(c: float, held_out: int | None) -> Logistic:
        parts = [(x, y) for x, y in zip(xs, ys)]
        parts += [p for j, ps in enumerate(extra) if j != held_out for p in ps]
        parts = [p for p in parts if len(p[1])]  # frames too small to cut a square from
        return fit_logistic(
            np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), c
        )

    fits = []
    fold_fits: dict[float, list[Logistic]] = {}
    for c in C_GRID:
        t = time.perf_counter()
        if k:
            fold_fits[c] = [fit(c, j) for j in range(k)]
            val_scores = crossfit.out_of_fold(
                fold_fits[c], {n: v[0] for n, v in val.items()}, folds
            )
            clf = fold_fits[c][0]
        else:
            clf = fit(c, None)
            val_scores = {n: clf(v[0]) for n, v in val.items()}
        thr, sens = sensitivity_at(val_scores, polyp, free, TARGET_FALSE_ALARM)
        fits.append((sens, -c, clf))
        print(
            f"[gate] C={c:g}: validation polyp frames alarmed {sens:.1%}"
            f"{' (out of fold)' if k else ''} with every polyp-free dataset at most "
            f"{TARGET_FALSE_ALARM:.1%} ({clf.iterations} Newton steps"
            f"{f' in the first of {k} fits' if k else ''}, {time.perf_counter() - t:.0f} s)",
            flush=True,
        )
    sens, negc, clf = max(fits, key=lambda f: (f[0], f[1]))
    c_best = -negc
    if k:
        clf = fit(c_best, None)  # the shipped gate: training and every fold
    weight, bias = clf.folded()
    gated = add_presence(featured, weight, bias)
    _check_mask_untouched(ort, proto, gated, base)

    name = args.name or Path(args.output).stem
    gate_doc: dict[str, Any] = {
        "base_model": base.name,
        "base_file": base_path.name,
        "features": {k: f"global average and max of {v}" for k, v in tensors.items()}
        | {"mask": f"peak and share over {base.output.threshold:g}"},
        "dimensions": int(weight.size),
        "frames": counts,
        "mirrored_training_frames": True,
        "crops": bool(args.crops),
        "c": clf.c,
        "c_chosen_on": (
            "validation: the highest mean sensitivity over the polyp datasets with every "
            f"polyp-free dataset at most {TARGET_FALSE_ALARM:.1%}, ties to the smaller C"
        ),
        "c_grid": [{"c": -negc, "validation_sensitivity": round(s, 4)} for s, negc, _ in fits],
        "command": getattr(args, "command_line", None),
    }
    if k:
        gate_doc["cross_fit"] = {
            "folds": k,
            "fitted_on": "the training split and every validation fold",
            "chosen_on": "out-of-fold validation scores: each fold scored by the gate fitted "
            "without it (C per frame, the decision through the app's smoother)",
        }
        gate_doc["c_chosen_on"] = "out-of-fold " + gate_doc["c_chosen_on"]
    with tempfile.TemporaryDirectory(prefix="polypvision-gate-") as tmpdir:
        scratch = Path(tmpdir) / "model.onnx"
        staged = dataclasses.replace(
            base,
            name=name,
            output=dataclasses.replace(
                base.output,
                presence=PRESENCE,
                min_area=0.0,
                min_peak=0.0,
                decision=DecisionSpec(),  # replaced by the one chosen below
            ),
            training={
                **{k: v for k, v in base.training.items() if k != "decision_candidates"},
                "presence_gate": gate_doc,
            },
        )
        set_contract(gated, staged)
        onnx.save_model(gated, str(scratch))
        if k:
            records = _out_of_fold_records(
                featured, staged, sds, folds, fold_fits[c_best], Path(tmpdir)
            )
            final = decision_from_records(
                staged,
                records,
                chosen_on=(
                    f"validation split, out of fold (the gate cross-fitted over {k} folds of "
                    "it): every polyp-free dataset at or under the target; the highest mean "
                    "sensitivity over the polyp datasets among score kinds and persistence rules"
                ),
            )
        else:
            final = with_decision(scratch, staged, sds)
        set_contract(gated, final)
        write_atomic(gated, args.output)
    decision = final.output.decision
    v = decision.validation or {}
    print(
        f"[gate] wrote {args.output}: C={clf.c:g}, {decision.describe()}; validation polyp "
        f"frames alarmed {v.get('sensitivity', 0):.1%}, polyp-free at most "
        f"{v.get('false_alarm_max', 0):.1%}; the mask is {base.name}'s, unchanged "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    return 0


def _fold_features(session, contract, sds, k: int, model_sha: str, crops: bool):
    """Each dataset's validation folds, and per fold the features its frames add to the other
    folds' gates: the frames mirrored as training's are, and with ``crops`` the squares of its
    polyp frames (cached like training's)."""
    folds: dict[str, list[list[int]]] = {}
    extra: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(k)]
    squares: dict[str, int] = {}
    for sd in sds:
        va = sd.samples("val")
        folds[sd.name] = crossfit.val_folds(sd, k)
        for j, idx in enumerate(folds[sd.name]):
            sub = [va[i] for i in idx]
            if not sub:
                continue
            extra[j].append(_cached_extract(session, contract, sub, True, model_sha))
            if crops and not sd.negative:
                cx, cy = _cached_extract(session, contract, sub, True, model_sha, crops=True)
                if len(cy):
                    extra[j].append((cx, cy))
                squares[sd.name] = squares.get(sd.name, 0) + len(cy) // 2  # mirrored
        print(
            f"[gate] {sd.name}: validation in {k} folds of "
            f"{', '.join(str(len(f)) for f in folds[sd.name])} frames",
            flush=True,
        )
    return folds, extra, squares


def _out_of_fold_records(featured, staged, sds, folds, fold_gates, tmpdir: Path) -> list:
    """Every validation frame through the app (smoother, clip by clip) with the gate that did not
    see its fold: the records the decision is chosen on."""
    import onnx

    from polypvision.model.session import Segmenter
    from polypvision.operating import score_frames
    from polypvision.training.export import set_contract

    records = []
    for j, gate in enumerate(fold_gates):
        proto = add_presence(featured, *gate.folded())
        set_contract(proto, staged)
        path = tmpdir / f"fold{j}.onnx"
        onnx.save_model(proto, str(path))
        seg = Segmenter(path, provider="cpu")
        for sd in sds:
            if folds[sd.name][j]:
                records += score_frames(seg, crossfit.fold_split(sd, folds[sd.name][j]), "val")
    return records


def _check_mask_untouched(ort, base_proto, gated_proto, contract, seed: int = 0) -> None:
    """The gated graph's mask must equal the base graph's, bit for bit, before it is written."""
    spec = contract.input
    shape = (
        (2, spec.height, spec.width, 3)
        if spec.layout == "NHWC"
        else (2, 3, spec.height, spec.width)
    )
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    runs = []
    for p in (base_proto, gated_proto):
        s = ort.InferenceSession(p.SerializeToString(), providers=["CPUExecutionProvider"])
        runs.append(s.run([contract.output.name], {spec.name: x})[0])
    if not np.array_equal(runs[0], runs[1]):
        raise GateError("gate: the gated graph changed the mask; nothing written")
