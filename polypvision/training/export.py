"""``polypvision export``: a trained run -> ONNX file carrying its contract.

tf2onnx (opset 17) converts the Keras model with a dynamic batch; the graph's input is
named ``image`` and its output renamed ``mask`` (tf2onnx names outputs differently per
export path, and the runtime finds tensors by the contract's names). The contract goes
into ``metadata_props`` under ``polypvision``. ``onnx.checker`` and a parity check of
onnxruntime against Keras on fixed-seed inputs (max abs difference <= 1e-4) must pass
before anything is written, and the file is written under a temporary name and then
renamed, so a failed export never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from polypvision.errors import UserError
from polypvision.model.contract import METADATA_KEY, InputSpec, ModelContract, OutputSpec

PARITY_TOL = 1e-4
EXPORT_SIZE = 256


class ExportError(UserError):
    """The checkpoint cannot be exported, or the exported graph does not match Keras."""


def to_onnx(model, size: int, opset: int = 17):
    """Convert a Keras model to an ONNX ModelProto with input ``image`` and output ``mask``."""
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec((None, size, size, 3), tf.float32, name="image")]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    graph = proto.graph
    renames = {}
    if graph.input[0].name != "image":
        renames[graph.input[0].name] = "image"
    for out, want in zip(graph.output, ("mask", "presence")):
        if out.name != want:
            renames[out.name] = want
    for old, new in renames.items():
        for node in graph.node:
            node.input[:] = [new if n == old else n for n in node.input]
            node.output[:] = [new if n == old else n for n in node.output]
        for vi in (*graph.input, *graph.output):
            if vi.name == old:
                vi.name = new
    return proto


def set_contract(proto, contract: ModelContract) -> None:
    for prop in list(proto.metadata_props):
        if prop.key == METADATA_KEY:
            proto.metadata_props.remove(prop)
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = contract.to_json()


def parity(model, proto, size: int, n: int = 2, seed: int = 0) -> float:
    """Max abs difference of onnxruntime vs Keras on fixed-seed normal inputs."""
    import onnxruntime as ort

    x = np.random.default_rng(seed).normal(size=(n, size, size, 3)).astype(np.float32)
    refs = model(x, training=False)
    refs = [np.asarray(r) for r in (refs if isinstance(refs, (list, tuple)) else [refs])]
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = ["mask", "presence"][: len(refs)]
    err = 0.0
    for got, ref in zip(sess.run(names, {"image": x}), refs):
        if got.shape != ref.shape:
            raise ExportError(f"exported graph returns shape {got.shape}, Keras {ref.shape}")
        err = max(err, float(np.max(np.abs(got - ref))))
    return err


def export_keras(
    model, contract: ModelContract, path: str | Path, tol: float = PARITY_TOL
) -> float:
    """Convert, attach the contract, check and write ``path``; returns the parity error."""
    import onnx

    size = contract.input.height
    proto = to_onnx(model, size)
    set_contract(proto, contract)
    onnx.checker.check_model(proto)
    err = parity(model, proto, size)
    if not err <= tol:
        raise ExportError(
            f"ONNX output differs from Keras by {err:.2e} (> {tol:.0e}); not writing {path}"
        )
    write_atomic(proto, path)
    return err


def write_atomic(proto, path: str | Path) -> None:
    import onnx

    from polypvision.fileio import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, ".onnx") as tmp:  # readable by all, like any file the user makes
        onnx.save_model(proto, str(tmp))


def make_contract(
    name: str,
    config: dict[str, Any],
    threshold: float,
    training: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    size: int = EXPORT_SIZE,
) -> ModelContract:
    arch = config["arch"]
    return ModelContract(
        name=name,
        architecture="unet" if arch == "unet" else f"{arch}-unet",
        base_filters=config.get("base_filters") if arch == "unet" else None,
        input=InputSpec(
            name="image",
            layout="NHWC",
            height=size,
            width=size,
            color="RGB",
            resize="bilinear",
            scale=1.0 / 255.0,
            mean=tuple(config["mean"]),
            std=tuple(config["std"]),
        ),
        output=OutputSpec(name="mask", kind="probability", threshold=float(threshold)),
        training=training,
        metrics=metrics or {},
    )


def read_metrics(path: str | Path) -> dict[str, Any]:
    """The test metrics JSON (``evaluate --json``) that ``--metrics`` stores in a contract."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(f"--metrics {path}: cannot read JSON ({exc})") from None


def _resolve(checkpoint: str) -> tuple[Path, Path]:
    p = Path(checkpoint)
    if p.is_dir():
        run_dir, weights = p, p / "best.weights.h5"
        try:  # the file the run's committed state names (the copy may lag behind a killed run)
            named = json.loads((p / "state.json").read_text()).get("best_file")
        except (OSError, ValueError):
            named = None
        if named and (p / named).is_file():
            weights = p / named
    else:
        run_dir, weights = p.parent, p
    if not weights.is_file():
        raise ExportError(
            f"no checkpoint at {weights}; pass a run folder from 'polypvision train' or its "
            ".weights.h5"
        )
    if not (run_dir / "state.json").is_file():
        raise ExportError(
            f"{run_dir} has no state.json; pass a run folder made by 'polypvision train'"
        )
    return run_dir, weights


def _portable(path: str | None) -> str | None:
    """A path relative to the repository when it lies near it (no machine-specific prefixes)."""
    if not path:
        return path
    repo = Path(__file__).resolve().parents[2]
    rel = os.path.relpath(Path(path).resolve(), repo)
    return rel if not rel.startswith("../../") else str(path)


def run(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from polypvision import data as pdata
    from polypvision.training.runs import build_model, configure_threads, git_commit
    from polypvision.training.validation import choose_threshold

    configure_threads(getattr(args, "threads", None))
    run_dir, weights = _resolve(args.checkpoint)
    state = json.loads((run_dir / "state.json").read_text())
    config = state["config"]
    from polypvision.training.encoders import export_outputs, has_presence

    model = build_model(config, EXPORT_SIZE)
    model.load_weights(weights)
    presence = has_presence(model)
    model = export_outputs(model)  # deep-supervision side outputs are for training only
    if args.threshold is not None:
        threshold = float(args.threshold)
    elif state.get("best_scores"):
        threshold = choose_threshold({float(k): tuple(v) for k, v in state["best_scores"].items()})
    else:
        threshold = float(state.get("threshold", 0.5))
    training = {
        "data": [
            {"path": _portable(d.path), "kind": d.kind} for d in pdata.specs_of_config(config)
        ],
        "split": (
            _portable(sf)
            if isinstance(sf := config.get("split_file"), str) or sf is None
            else {k: _portable(v) for k, v in sf.items()}
        ),
        "split_leaky": config.get("split_leaky"),
        "epochs": state.get("epoch"),
        "best_epoch": state.get("best_epoch"),
        "input_size": config.get("input_size"),
        "command": state.get("commands"),
        "wall_time_s": round(float(state.get("wall_s", 0.0))),
        "git_commit": git_commit(),
        "checkpoint": str(weights),
        "val_dice_at_0.5": state.get("best_dice"),
        "val_per_dataset": (state.get("best_detail") or {}).get("per_dataset"),
        "val_negative_frames_flagged_raw": (state.get("best_detail") or {}).get(
            "negative_frames_flagged"
        ),
        "weights": state.get("best_weights"),
        "recipe": {
            k: config.get(k)
            for k in (
                "arch",
                "base_filters",
                "input_size",
                "crop_size",
                "batch_size",
                "lr",
                "finetune_lr",
                "warmup_epochs",
                "epochs",
                "loss",
                "deep_supervision",
                "background_crops",
                "negative_share",
                "presence",
                "distill_weight",
                "ema_decay",
                "seed",
            )
        }
        | {
            "teacher": Path(config["teacher"]).name if config.get("teacher") else None,
            "hard_negatives": Path(config["hard_negatives"]).name
            if config.get("hard_negatives")
            else None,
            "swa": state.get("swa", {}).get("epochs")
            if (state.get("swa") or {}).get("used")
            else None,
        },
        "threshold_chosen_on": (
            "validation split (closest to 0.5 within 0.01 of the best validation Dice)"
        ),
    }
    training["parameters"] = int(model.count_params())
    metrics = read_metrics(args.metrics) if args.metrics else None
    name = args.name or Path(args.output).stem
    contract = make_contract(name, config, threshold, training, metrics)
    specs = pdata.specs_of_config(config)
    if presence:
        import dataclasses

        contract = dataclasses.replace(
            contract, output=dataclasses.replace(contract.output, presence="presence")
        )
    if any(sp.kind == "negative" for sp in specs) and presence:
        err, decision = _export_with_decision(model, contract, specs, config, args.output)
        print(f"frame decision chosen on validation: {decision.describe()}")
        v = decision.validation or {}
        print(
            f"  validation: polyp frames alarmed {v.get('sensitivity', 0):.1%} (mean over the "
            f"polyp datasets), polyp-free frames alarmed at most {v.get('false_alarm_max', 0):.1%}"
        )
    elif any(sp.kind == "negative" for sp in specs) and not getattr(args, "no_gate", False):
        err, gate = _export_with_gate(model, contract, specs, config, args.output)
        print(
            f"gate chosen on validation: min area {gate['min_area']:g}, min peak "
            f"{gate['min_peak']:g} (polyp found {gate.get('val_found', 0):.1%}, polyp-free "
            f"frames flagged {gate.get('val_flagged', 0):.1%})"
        )
    else:
        err = export_keras(model, contract, args.output)
    print(
        f"exported {args.output}: {model.count_params():,} parameters, parity max|ONNX-Keras| "
        f"{err:.2e}, threshold {threshold}"
    )
    return 0


def _export_with_gate(
    model, contract: ModelContract, specs, config: dict[str, Any], output: str | Path
):
    """Export to a scratch file, choose the frame-level gate on the run's validation split through
    the app's own decision (``evaluate.choose_gate``), then write the model with the gate in its
    contract."""
    import dataclasses

    import onnx

    from polypvision import data as pdata
    from polypvision.evaluate import choose_gate
    from polypvision.model.session import Segmenter

    with tempfile.TemporaryDirectory(prefix="polypvision-export-") as tmpdir:
        scratch = Path(tmpdir) / "model.onnx"
        err = export_keras(model, contract, scratch)
        split_file = config.get("split_file")
        sds = pdata.load_splits(specs, split_file, create=False)
        gate = choose_gate(Segmenter(scratch, provider="cpu"), sds)
        out = dataclasses.replace(
            contract.output, min_area=float(gate["min_area"]), min_peak=float(gate["min_peak"])
        )
        final = dataclasses.replace(
            contract, output=out, training={**contract.training, "gate": gate}
        )
        proto = onnx.load(str(scratch))
        set_contract(proto, final)
        write_atomic(proto, output)
    return err, gate


def with_decision(model_path: str | Path, contract: ModelContract, sds) -> ModelContract:
    """``contract`` with the frame decision chosen for the model at ``model_path`` (score kind,
    operating threshold at the target false-alarm rate, persistence) on the validation side of
    ``sds`` through the app's own smoother (``operating.choose_decision``), and every candidate
    tried in its training record. One rule for export, ``polypvision gate`` and
    ``scripts/choose_decision.py``."""
    from polypvision.errors import UserError
    from polypvision.model.session import Segmenter
    from polypvision.operating import cross_fitted, score_frames

    if cross_fitted(contract):
        raise UserError(
            f"{contract.name}: its gate is cross-fitted on the validation frames, so a decision "
            "chosen on them would be in-sample; `polypvision gate --cross-fit` chooses it out "
            "of fold"
        )
    seg = Segmenter(model_path, provider="cpu")
    return decision_from_records(contract, [r for sd in sds for r in score_frames(seg, sd, "val")])


def decision_from_records(
    contract: ModelContract, records, chosen_on: str | None = None
) -> ModelContract:
    """``contract`` with the decision ``operating.choose_decision`` picks on validation
    ``records`` (``chosen_on`` replaces its description, e.g. for out-of-fold records)."""
    import dataclasses

    from polypvision.operating import choose_decision

    decision, table = choose_decision(records)
    if chosen_on:
        decision = dataclasses.replace(decision, chosen_on=chosen_on)
    return dataclasses.replace(
        contract,
        output=dataclasses.replace(contract.output, decision=decision),
        training={**contract.training, "decision_candidates": _compact_candidates(table)},
    )


def _export_with_decision(
    model, contract: ModelContract, specs, config: dict[str, Any], output: str | Path
):
    """Export to a scratch file, choose the frame decision on the run's validation split
    (:func:`with_decision`), then write the model with it in its contract. The pixel gate stays
    off: the decision is the frame-level gate of a model with a presence output."""
    import onnx

    from polypvision import data as pdata

    with tempfile.TemporaryDirectory(prefix="polypvision-export-") as tmpdir:
        scratch = Path(tmpdir) / "model.onnx"
        err = export_keras(model, contract, scratch)
        sds = pdata.load_splits(specs, config.get("split_file"), create=False)
        final = with_decision(scratch, contract, sds)
        proto = onnx.load(str(scratch))
        set_contract(proto, final)
        write_atomic(proto, output)
    return err, final.output.decision


def _compact_candidates(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every decision rule tried on validation, without the per-dataset detail."""
    keys = ("score", "window", "min_hits", "threshold", "sensitivity", "false_alarm_max")
    return [
        {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items() if k in keys}
        for row in table
    ]
