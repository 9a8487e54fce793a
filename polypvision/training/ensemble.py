"""``polypvision ensemble``: several exported models -> one ONNX file that averages them.

Why: on the few validation and test sequences there are, two trainings of one recipe can differ by
as much as two encoders do (the runs' figures are in benchmarks/), so a cheap accuracy lever on this
data is to average models rather than pick one. Each member keeps its own input scaling: the
ensemble's input is raw RGB pixels (scale 1, mean 0, std 1) and a per-member ``Mul``/``Add`` turns
it into what that member was trained on, computed from the member's contract, so the runtime sees
one ordinary model and needs no change. The members' graphs are copied unchanged (names prefixed),
their probabilities averaged with ``Mean``.

Needs ``onnx`` (the ``train`` or ``dev`` extra), not TensorFlow: it works on the shipped
files, so what is averaged is exactly what was evaluated. Before anything is written,
``onnx.checker`` must pass and the ensemble must match the mean of the members run one
by one in onnxruntime (max abs difference <= 1e-5); the file is written atomically.
With ``--data`` the validation mean Dice at 0.5 is measured and stored in the contract,
which is what the app's start-up pick ranks by.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from polypvision.errors import UserError
from polypvision.model.contract import METADATA_KEY, InputSpec, ModelContract, OutputSpec

PARITY_TOL = 1e-5


class EnsembleError(UserError):
    """The members cannot be combined, or the combined graph does not match them."""


def read_member(path: str | Path):
    """(ModelProto, contract) of one member; a clear error when it is not a polypvision model."""
    import onnx

    p = Path(path)
    if not p.is_file():
        raise EnsembleError(
            f"{p}: no such model file; pass exported .onnx files (polypvision export)"
        )
    try:
        proto = onnx.load(str(p))
    except Exception as exc:  # onnx raises DecodeError and friends
        raise EnsembleError(f"{p}: not an ONNX model ({type(exc).__name__})") from None
    meta = {prop.key: prop.value for prop in proto.metadata_props}
    if METADATA_KEY not in meta:
        raise EnsembleError(
            f"{p}: no polypvision contract in the metadata; export it with 'polypvision export'"
        )
    return proto, ModelContract.from_json(meta[METADATA_KEY])


def _check_compatible(contracts: list[ModelContract], names: list[str]) -> None:
    first = contracts[0].input
    for c, n in zip(contracts[1:], names[1:]):
        i = c.input
        for key in ("layout", "height", "width", "color", "resize"):
            if getattr(i, key) != getattr(first, key):
                raise EnsembleError(
                    f"{n}: input {key} {getattr(i, key)!r} differs from {names[0]}'s "
                    f"{getattr(first, key)!r}; members must share the input geometry"
                )


def _value_info(values, name: str):
    return next((v for v in values if v.name == name), None)


def _dims(vi) -> list[int | None]:
    """A tensor's dimensions: an int where fixed, None where symbolic."""
    return [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]


def _check_graphs(members: list[tuple[Any, ModelContract]]) -> None:
    """Same opsets and output rank for every member
    (a merged graph runs under one opset per domain)."""
    first_proto, first = members[0]
    opsets0 = {op.domain or "ai.onnx": op.version for op in first_proto.opset_import}
    rank0 = None
    for proto, c in members:
        opsets = {op.domain or "ai.onnx": op.version for op in proto.opset_import}
        for domain in set(opsets) & set(opsets0):
            if opsets[domain] != opsets0[domain]:
                raise EnsembleError(
                    f"{c.name}: opset {opsets[domain]} for '{domain}' differs from {first.name}'s "
                    f"{opsets0[domain]}; export the members with the same opset"
                )
        inp = _value_info(proto.graph.input, c.input.name)
        out = _value_info(proto.graph.output, c.output.name)
        if inp is None or out is None:
            raise EnsembleError(
                f"{c.name}: the graph has no input {c.input.name!r} or output {c.output.name!r} "
                "named by its contract; re-export it"
            )
        rank = len(_dims(out))
        if rank0 is None:
            rank0 = rank
        elif rank != rank0:
            raise EnsembleError(
                f"{c.name}: output has rank {rank}, {first.name}'s {rank0}; members must return "
                "masks of the same shape"
            )


def _batch_of(member: tuple[Any, ModelContract]) -> int | None:
    """The batch size the member's graph is fixed to, or None for a dynamic batch."""
    proto, c = member
    dims = _dims(_value_info(proto.graph.input, c.input.name))
    return int(dims[0]) if dims and dims[0] else None


def _fixed_batch(members: list[tuple[Any, ModelContract]]) -> int | None:
    """The batch size a member is fixed to, if any (then the ensemble is fixed to it too)."""
    return next((b for b in map(_batch_of, members) if b), None)


def member_affine(spec: InputSpec, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with member_input = x * a + b for x = pixel * ``scale`` (the ensemble's input).

    The ensemble's input is raw pixels (scale 1), so a = member scale / std and b = -mean / std:
    the same multiply-add the runtime's preprocessing does for the member on its own.
    """
    std = np.asarray(spec.std, np.float64)
    a = spec.scale / scale / std
    b = -np.asarray(spec.mean, np.float64) / std
    return a.astype(np.float32), b.astype(np.float32)


def compose(
    members: list[tuple[Any, ModelContract]],
    name: str,
    threshold: float,
    training: dict[str, Any],
    metrics: dict[str, Any] | None = None,
):
    """The averaged graph with its contract attached (not yet checked or written)."""
    import onnx
    from onnx import TensorProto, compose, helper, numpy_helper

    from polypvision.training.export import set_contract

    if len(members) < 2:
        raise EnsembleError("an ensemble needs at least two member models")
    contracts = [c for _, c in members]
    _check_compatible(contracts, [c.name for c in contracts])
    _check_graphs(members)
    spec0 = contracts[0].input
    scale = 1.0  # raw pixels in; each member's scaling is its own Mul/Add
    shape_c = [3] if spec0.layout == "NHWC" else [3, 1, 1]
    nodes, inits, opsets = [], [], {}
    outputs = []
    # the ensemble's input and output types: a fixed-batch member's if there is one (it fixes the
    # batch)
    source, src_c = next((m for m in members if _batch_of(m)), members[0])
    first_in = _value_info(source.graph.input, src_c.input.name)
    for k, (proto, c) in enumerate(members):
        pre = f"m{k}_"
        m = compose.add_prefix(proto, prefix=pre)
        for op in m.opset_import:
            opsets[op.domain] = max(opsets.get(op.domain, 0), op.version)
        inp = pre + c.input.name
        a, b = member_affine(c.input, scale)
        inits += [
            numpy_helper.from_array(a.reshape(shape_c), pre + "ens_a"),
            numpy_helper.from_array(b.reshape(shape_c), pre + "ens_b"),
        ]
        nodes += [
            helper.make_node(
                "Mul", ["image", pre + "ens_a"], [pre + "ens_scaled"], name=pre + "ens_mul"
            ),
            helper.make_node(
                "Add", [pre + "ens_scaled", pre + "ens_b"], [inp], name=pre + "ens_add"
            ),
        ]
        nodes += list(m.graph.node)
        inits += list(m.graph.initializer)
        out = pre + c.output.name
        if c.output.kind == "logit":
            nodes.append(
                helper.make_node("Sigmoid", [out], [out + "_prob"], name=pre + "ens_sigmoid")
            )
            out += "_prob"
        outputs.append(out)
    nodes.append(helper.make_node("Mean", outputs, ["mask"], name="ensemble_mean"))
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, None)
    image.type.CopyFrom(first_in.type)
    mask = helper.make_tensor_value_info("mask", TensorProto.FLOAT, None)
    mask.type.CopyFrom(_value_info(source.graph.output, src_c.output.name).type)
    graph = helper.make_graph(nodes, name, [image], [mask], initializer=inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
        producer_name="polypvision-ensemble",
    )
    model.ir_version = max(p.ir_version for p, _ in members)
    contract = ModelContract(
        name=name,
        architecture="ensemble(" + "+".join(c.architecture for c in contracts) + ")",
        base_filters=None,
        input=InputSpec(
            name="image",
            layout=spec0.layout,
            height=spec0.height,
            width=spec0.width,
            color=spec0.color,
            resize=spec0.resize,
            scale=scale,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
        ),
        output=OutputSpec(name="mask", kind="probability", threshold=float(threshold)),
        training=training,
        metrics=metrics or {},
    )
    set_contract(model, contract)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # the checker's own errors carry multi-line context
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EnsembleError(f"the combined graph fails the ONNX checker: {first_line}") from None
    return model, contract


def parity(
    proto, members: list[tuple[Any, ModelContract]], n: int | None = None, seed: int = 0
) -> float:
    """Max abs difference between the ensemble and the mean of its members run one by one.

    Batch 2 (the dynamic batch the runtime uses) unless a member is fixed to another size.
    """
    try:
        return _parity(proto, members, n or _fixed_batch(members) or 2, seed)
    except EnsembleError:
        raise
    except Exception as exc:  # onnxruntime's errors: one line for the user
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EnsembleError(
            f"the combined graph does not run in onnxruntime: {first_line}"
        ) from None


def _parity(proto, members: list[tuple[Any, ModelContract]], n: int, seed: int) -> float:
    import onnxruntime as ort

    c0 = members[0][1].input
    shape = (n, c0.height, c0.width, 3) if c0.layout == "NHWC" else (n, 3, c0.height, c0.width)
    pixels = np.random.default_rng(seed).integers(0, 256, shape).astype(np.float32)
    cpu = ["CPUExecutionProvider"]
    ens = ort.InferenceSession(proto.SerializeToString(), providers=cpu)
    got = ens.run(["mask"], {"image": pixels})[0]
    probs = []
    for m, c in members:
        sess = ort.InferenceSession(m.SerializeToString(), providers=cpu)
        shape_c = (3,) if c.input.layout == "NHWC" else (3, 1, 1)
        x = (pixels * c.input.scale - np.reshape(c.input.mean, shape_c)) / np.reshape(
            c.input.std, shape_c
        )
        p = sess.run([c.output.name], {c.input.name: x.astype(np.float32)})[0]
        probs.append(1.0 / (1.0 + np.exp(-p)) if c.output.kind == "logit" else p)
    ref = np.mean(probs, axis=0)
    if got.shape != ref.shape:
        raise EnsembleError(f"ensemble returns shape {got.shape}, its members {ref.shape}")
    return float(np.max(np.abs(got - ref)))


def build(
    member_paths: list[str | Path],
    output: str | Path,
    name: str | None = None,
    threshold: float = 0.5,
    data: str | Path | None = None,
    split_file: str | Path | None = None,
    metrics: dict[str, Any] | None = None,
    command: str | None = None,
    recipe_val_dice: float | None = None,
) -> dict[str, Any]:
    """Compose, check, measure validation Dice
    (when ``data`` is given) and write ``output`` atomically.

    Members refitted on train + val (``train --refit-of``) have no held-out validation left, so
    ``data`` is refused for them; ``recipe_val_dice`` then records the validation Dice that the
    same ensemble of the runs they refit scored (measured before the refit), labelled as such.
    """
    from polypvision.training.export import _portable, set_contract, write_atomic
    from polypvision.training.weights import sha256_of

    if not 0.0 < threshold < 1.0:
        raise EnsembleError(f"--threshold {threshold}: must lie strictly between 0 and 1")
    if recipe_val_dice is not None and not 0.0 < recipe_val_dice <= 1.0:
        raise EnsembleError(f"--recipe-val-dice {recipe_val_dice}: a Dice lies in (0, 1]")
    output = Path(output)
    paths = [Path(p) for p in member_paths]
    if any(p.resolve() == output.resolve() for p in paths):
        raise EnsembleError(f"{output} is also a member; write the ensemble to a new file")
    members = [read_member(p) for p in paths]
    refits = [c.name for _, c in members if c.training.get("refit")]
    if refits and data is not None:
        raise EnsembleError(
            f"{', '.join(refits)}: trained on train + val (refit), so a validation Dice of the "
            "ensemble would be measured on training data; drop --data (see --recipe-val-dice)"
        )
    if recipe_val_dice is not None and not refits:
        raise EnsembleError(
            "--recipe-val-dice is only for members refitted on train + val; pass --data instead"
        )
    name = name or output.stem
    training: dict[str, Any] = {
        "combination": (
            "mean of the members' probabilities; each member keeps its own input scaling"
        ),
        "members": [
            {
                "file": p.name,
                "sha256": sha256_of(p),
                "name": c.name,
                "architecture": c.architecture,
                "val_dice_at_0.5": c.training.get("val_dice_at_0.5"),
                "test_mean_dice": (c.metrics.get("mean") or {}).get("dice"),
            }
            for p, (_, c) in zip(paths, members)
        ],
        "data": members[0][1].training.get("data"),
        "split": members[0][1].training.get("split"),
        "split_leaky": any(bool(c.training.get("split_leaky")) for _, c in members),
        "input_size": members[0][1].input.height,
        "command": [command] if command else [],
        "threshold_chosen_on": "fixed at 0.5 before any ensemble figure was measured",
    }
    if recipe_val_dice is not None:
        training["val_dice_at_0.5"] = float(recipe_val_dice)
        training["val_dice_source"] = (
            "the recipe's: the same ensemble of the runs these members refit, measured "
            "on validation before the refit"
        )
    proto, contract = compose(members, name, threshold, training, metrics)
    err = parity(proto, members)
    if not err <= PARITY_TOL:
        raise EnsembleError(
            f"ensemble differs from the mean of its members by {err:.2e} (> {PARITY_TOL:.0e}); "
            f"not writing {output}"
        )
    if data is not None:
        training["val_dice_at_0.5"] = _val_dice(proto, data, split_file)
        training["split"] = _portable(str(split_file)) if split_file else training["split"]
        set_contract(proto, dataclasses.replace(contract, training=training))
    write_atomic(proto, output)
    return {
        "output": str(output),
        "parity": err,
        "val_dice_at_0.5": training.get("val_dice_at_0.5"),
        "members": len(members),
    }


def _val_dice(proto, data: str | Path, split_file: str | Path | None) -> float:
    """Validation mean Dice at 0.5 through the app's own preprocessing
    (the file is written to a temp first)."""
    from polypvision.evaluate import evaluate
    from polypvision.training.export import write_atomic

    fd, tmp = tempfile.mkstemp(prefix="ensemble.", suffix=".onnx")
    os.close(fd)
    try:
        write_atomic(proto, tmp)
        r = evaluate(tmp, data, split="val", split_file=split_file, threshold=0.5)
    finally:
        os.unlink(tmp)
    return float(r["mean"]["dice"])


def run(args) -> int:
    import shlex

    from polypvision.training.export import read_metrics

    metrics = read_metrics(args.metrics) if args.metrics else None
    # provenance: the command that makes the model, rebuilt from the parsed arguments (not how
    # its test metrics were attached afterwards, which --metrics records in the contract itself)
    parts = ["polypvision", "ensemble", *map(str, args.members), "-o", str(args.output)]
    for flag, value in (
        ("--name", args.name),
        ("--threshold", args.threshold),
        ("--data", args.data),
        ("--split-file", args.split_file),
        ("--recipe-val-dice", getattr(args, "recipe_val_dice", None)),
    ):
        if value is not None:
            parts += [flag, str(value)]
    command = " ".join(shlex.quote(p) for p in parts)
    r = build(
        args.members,
        args.output,
        name=args.name,
        threshold=args.threshold,
        data=args.data,
        split_file=args.split_file,
        metrics=metrics,
        command=command,
        recipe_val_dice=getattr(args, "recipe_val_dice", None),
    )
    val = r["val_dice_at_0.5"]
    print(
        f"wrote {r['output']}: mean of {r['members']} models, parity max|ensemble - mean of "
        f"members| {r['parity']:.2e}"
        + (f", validation mean Dice at 0.5 {val:.4f}" if val is not None else "")
        + (
            " (the recipe's, as given)"
            if getattr(args, "recipe_val_dice", None) is not None
            else ""
        )
    )
    return 0
