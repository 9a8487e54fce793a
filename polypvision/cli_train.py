"""The ``train``, ``export``, ``evaluate``, ``accuracy`` and ``alarms`` subcommands.

Imports nothing heavy: ``train`` and ``export`` need TensorFlow (the ``train`` extra),
which the runtime never loads, so their implementations are imported inside the
command functions. ``evaluate`` needs only the runtime (onnxruntime, OpenCV).
"""

from __future__ import annotations

import argparse
import sys

TRAIN_EXTRA_HINT = (
    "polypvision {cmd} needs the train extra: pip install 'polypvision[train,cpu]' (or [train,gpu])"
)


def _train(args: argparse.Namespace) -> int:
    try:
        import tensorflow  # noqa: F401

        from polypvision.training import train
    except ImportError:
        print(TRAIN_EXTRA_HINT.format(cmd="train"), file=sys.stderr)
        return 2
    return train.run(args)


def _export(args: argparse.Namespace) -> int:
    try:
        import onnx  # noqa: F401
        import tensorflow  # noqa: F401
        import tf2onnx  # noqa: F401

        from polypvision.training import export
    except ImportError:
        print(TRAIN_EXTRA_HINT.format(cmd="export"), file=sys.stderr)
        return 2
    return export.run(args)


def _gate(args: argparse.Namespace) -> int:
    try:
        import onnx  # noqa: F401

        from polypvision.training import gate
    except ImportError:
        print(TRAIN_EXTRA_HINT.format(cmd="gate"), file=sys.stderr)
        return 2
    args.command_line = (
        " ".join(["polypvision", *sys.argv[1:]]) if sys.argv[1:2] == ["gate"] else None
    )
    return gate.run(args)


def _evaluate(args: argparse.Namespace) -> int:
    from polypvision import evaluate
    from polypvision.alarms import frame_tier_markdown

    return evaluate.run(args, frame_tier=frame_tier_markdown)


def register(subparsers) -> None:
    """Add ``train``, ``export``, ``evaluate``, ``accuracy`` and ``alarms`` to the main parser's
    subparsers."""
    p = subparsers.add_parser(
        "train",
        help="train a segmentation model on a leak-free split (needs the train extra)",
        description="Train a UNet on a dataset folder (images/, masks/, optional sequences.csv). "
        "Checkpoints every epoch; --resume continues a cut-off run.",
    )
    p.add_argument(
        "--data",
        action="append",
        default=None,
        help=(
            "dataset folder with images/ and masks/ (CVC-ClinicDB or Kvasir-SEG layout, any "
            "frame size); repeat for several datasets (default on --resume: the run's)"
        ),
    )
    p.add_argument(
        "--negatives",
        action="append",
        default=None,
        help="folder of polyp-free frames (images/ only; sequences from sequences.csv or the stem "
        "'seqK_imgN'): trained on as all-background frames; repeatable",
    )
    p.add_argument(
        "--negative-share",
        type=float,
        default=None,
        help="share of each batch drawn from --negatives (default 0.15)",
    )
    p.add_argument(
        "--deep-supervision",
        action="store_true",
        help=(
            "side outputs on two coarser decoder stages, trained with the same loss (weight "
            "0.4 each); pretrained-encoder UNets only, dropped at export"
        ),
    )
    p.add_argument(
        "--background-crops",
        action="store_true",
        help=(
            "also train on polyp-free squares cut from the polyp frames away from the polyp "
            "(their centres' stool, text and insets as negatives); they share --negative-share "
            "with the --negatives folders"
        ),
    )
    p.add_argument(
        "--presence-head",
        action="store_true",
        help=(
            "add a frame-level output (is there a polyp anywhere in this frame?) on the encoder, "
            "trained on polyp and polyp-free frames; exported with the mask, and the app's alarm "
            "rests on it"
        ),
    )
    p.add_argument(
        "--hard-negatives",
        default=None,
        metavar="MODEL.onnx",
        help=(
            "mine hard negatives with this exported model: the polyp-free training frames and the "
            "polyp-free squares of the polyp frames it outlines something on become an extra "
            "polyp-free group (a share of the negative draws of its own)"
        ),
    )
    p.add_argument(
        "--teacher",
        default=None,
        metavar="MODEL.onnx",
        help=(
            "distil from this exported model (e.g. a larger one): its probability on every "
            "training frame is an extra soft target (BCE, weight --distill-weight)"
        ),
    )
    p.add_argument(
        "--distill-weight",
        type=float,
        default=None,
        help="weight of the teacher term (default 0.5)",
    )
    p.add_argument(
        "--loss",
        default=None,
        choices=["bce-dice", "structure"],
        help=(
            "bce-dice (default): BCE + per-image soft Dice; structure: PraNet's "
            "boundary-weighted BCE + IoU"
        ),
    )
    p.add_argument(
        "--out", default=None, help="run folder for checkpoints, state and history (e.g. runs/mnv2)"
    )
    p.add_argument(
        "--arch",
        default="unet",
        choices=["unet", "mobilenetv2", "efficientnet-lite0"],
        help="model family (default: unet)",
    )
    p.add_argument(
        "--base-filters",
        type=int,
        default=16,
        help="UNet width: 64 is the research model, 16 the real-time one",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="total epochs (default 40; on --resume, a new total)",
    )
    p.add_argument(
        "--warmup-epochs",
        type=int,
        default=5,
        help="epochs with a pretrained encoder frozen (default 5)",
    )
    p.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="training resolution, square (default 256; may change on --resume)",
    )
    p.add_argument(
        "--crop-size",
        type=int,
        default=None,
        help=(
            "train on random crop x crop patches at the zoom of --input-size (about 4x cheaper "
            "per step at half size); validation and export stay at --input-size; 0 turns it "
            "off on --resume"
        ),
    )
    p.add_argument("--batch-size", type=int, default=None, help="images per step (default 8)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 1e-3)")
    p.add_argument(
        "--finetune-lr",
        type=float,
        default=None,
        help="learning rate after the warm-up (default 2e-4)",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=None,
        help="early stop after this many epochs without val Dice gain (default 15)",
    )
    p.add_argument(
        "--ema-decay",
        type=float,
        default=0.99,
        help="per-step weight EMA used for validation and the best checkpoint",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed for the split (first use) and training"
    )
    p.add_argument(
        "--split-file",
        default=None,
        help=(
            "split JSON with a part per dataset (default: the shipped splits/two-centre.json "
            "for the datasets it covers, else <dataset>.json in the user's data folder, made "
            "on first use; in a checkout, splits/NAME.json makes a split to commit)"
        ),
    )
    p.add_argument(
        "--leaky-split",
        action="store_true",
        help=(
            "per-image random split even when sequences are known "
            "(<dataset>-per-image-LEAKY.json): only for comparing with published "
            "tables; every report flags it as leaky"
        ),
    )
    p.add_argument(
        "--threads", type=int, default=None, help="TensorFlow threads (default: all cores)"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    p.add_argument(
        "--swa-of",
        default=None,
        metavar="RUN",
        help=(
            "average the weights of RUN's last --swa-last epochs (SWA), validate the average, "
            "and make it RUN's best weights only if it scores higher on validation "
            "(recorded either way)"
        ),
    )
    p.add_argument(
        "--swa-last", type=int, default=5, help="epochs averaged by --swa-of (default 5)"
    )
    p.add_argument("--force", action="store_true", help="start over even if --out holds a run")
    p.set_defaults(func=_train)

    e = subparsers.add_parser(
        "export",
        help="export a trained run to ONNX with its contract (needs the train extra)",
        description=(
            "Export a run folder (or a .weights.h5 inside one) to ONNX, opset 17, with "
            "the polypvision contract."
        ),
    )
    e.add_argument(
        "checkpoint", help="run folder (uses best.weights.h5) or a .weights.h5 file in a run folder"
    )
    e.add_argument(
        "-o", "--output", required=True, help="ONNX file to write, e.g. models/NAME.onnx"
    )
    e.add_argument(
        "--name", default=None, help="model name in the contract (default: the output file's stem)"
    )
    e.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="decision threshold (default: the one chosen on validation)",
    )
    e.add_argument(
        "--metrics",
        default=None,
        help="JSON file of test metrics (from evaluate --json) to store in the contract",
    )
    e.add_argument("--threads", type=int, default=None, help="TensorFlow threads")
    e.add_argument(
        "--no-gate",
        action="store_true",
        help=(
            "do not choose a frame-level gate (min area / min peak) on the run's polyp-free "
            "validation frames (chosen by default when the run has --negatives)"
        ),
    )
    e.set_defaults(func=_export)

    gp = subparsers.add_parser(
        "gate",
        help="fit a frame-level presence output on an exported model's own features",
        description=(
            "Give an exported encoder UNet a frame-level presence output without touching its "
            "mask: pooled features of the frozen graph (the last encoder block, the bottleneck, "
            "the first and last decoder stages, the mask's peak and area) feed a logistic "
            "regression fitted on the training split (C chosen on validation), appended to the "
            "graph; the frame decision is then chosen on validation as export does. No "
            "TensorFlow needed."
        ),
    )
    gp.add_argument("model", help="exported model (.onnx) to gate, e.g. the shipped default")
    gp.add_argument("-o", "--output", required=True, help="ONNX file to write")
    gp.add_argument("--name", default=None, help="contract name (default: the output's stem)")
    gp.add_argument(
        "--data", action="append", required=True, help="polyp dataset folder; repeatable"
    )
    gp.add_argument(
        "--negatives",
        action="append",
        required=True,
        help="polyp-free frames folder; repeatable",
    )
    gp.add_argument(
        "--split-file",
        default=None,
        help="the split (default: the shipped two-centre split of each dataset)",
    )
    gp.add_argument(
        "--crops",
        action="store_true",
        help=(
            "also fit on squares of the training polyp frames: the polyp-free square "
            "train --background-crops cuts and one of the same side holding the polyp, so the "
            "gate cannot tell a polyp by the centre's look or the zoom"
        ),
    )
    gp.add_argument(
        "--cross-fit",
        type=int,
        default=0,
        metavar="K",
        help=(
            "also fit on the validation frames, cross-fitted over K folds of them (whole "
            "sequences, near-duplicates together): C and the decision are chosen on "
            "out-of-fold scores, the written gate is fitted on training and all of validation "
            "(docs/decisions.md); 0, the default, fits on training only"
        ),
    )
    gp.add_argument("--threads", type=int, default=None, help="onnxruntime threads")
    gp.set_defaults(func=_gate)

    v = subparsers.add_parser(
        "evaluate",
        help="evaluate an ONNX model on dataset splits, as the app runs it",
        description=(
            "Run the ONNX model through the app's own preprocessing on one side of each "
            "dataset's split and print the polyp literature's table (mDice, mIoU, "
            "weighted F, S-measure, E-measure, MAE) with Dice at the model's "
            "threshold, precision, recall and the share of frames where the app "
            "finds the polyp; for folders of polyp-free frames, the share of frames "
            "where it reports one."
        ),
    )
    v.add_argument("--model", required=True, help="ONNX model file with a polypvision contract")
    v.add_argument(
        "--data",
        action="append",
        default=None,
        help="dataset folder with images/ and masks/; repeat for several datasets",
    )
    v.add_argument(
        "--negatives",
        action="append",
        default=None,
        help=(
            "folder of polyp-free frames (images/): report how often a polyp is reported; "
            "repeatable"
        ),
    )
    v.add_argument(
        "--split",
        default="test",
        choices=["train", "val", "test", "all"],
        help="which side of the split (default test)",
    )
    v.add_argument(
        "--split-file",
        default=None,
        help=(
            "split JSON (default: the shipped splits/two-centre.json for the datasets it "
            "covers, else <dataset>.json in the user's data folder)"
        ),
    )
    v.add_argument("--out", default=None, help="write the Markdown report here")
    v.add_argument(
        "--json", default=None, help="write the metrics as JSON here (for export --metrics)"
    )
    v.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="threshold for the main table (default: the contract's)",
    )
    v.add_argument(
        "--provider",
        default="cpu",
        choices=["auto", "cpu", "cuda"],
        help="onnxruntime provider (default cpu)",
    )
    v.add_argument("--threads", type=int, default=None, help="onnxruntime threads")
    v.add_argument("--batch", type=int, default=8, help="frames per inference call")
    v.add_argument("--tta", action="store_true", help="also report flip test-time augmentation")
    v.set_defaults(func=_evaluate)
    register_accuracy(subparsers)
    from polypvision.alarms import register as register_alarms

    register_alarms(subparsers)


def _accuracy(args: argparse.Namespace) -> int:
    from polypvision import accuracy

    return accuracy.run(args)


def register_accuracy(subparsers) -> None:
    a = subparsers.add_parser(
        "accuracy",
        help=(
            "every shipped model on the test splits beside published results "
            "(benchmarks/accuracy.md)"
        ),
        description=(
            "Evaluate every shipped model (or --models) on the test side of each "
            "dataset's split and write one Markdown table per dataset with the "
            "published U-Net, PraNet and Polyp-PVT figures (quoted), plus the "
            "false-alarm table on polyp-free sequences."
        ),
    )
    a.add_argument(
        "--data",
        action="append",
        default=None,
        help="dataset folder; repeat (e.g. Kvasir-SEG, CVC-ClinicDB)",
    )
    a.add_argument(
        "--negatives", action="append", default=None, help="folder of polyp-free frames; repeatable"
    )
    a.add_argument(
        "--models", nargs="+", default=None, help="ONNX files (default: every shipped model)"
    )
    a.add_argument(
        "--split-file", default=None, help="split JSON (default: splits/two-centre.json)"
    )
    a.add_argument(
        "-o",
        "--output",
        default="benchmarks/accuracy.md",
        help="Markdown to write (default %(default)s)",
    )
    a.add_argument(
        "--json", default="benchmarks/accuracy.json", help="JSON to write (default %(default)s)"
    )
    a.add_argument("--threads", type=int, default=None, help="onnxruntime threads")
    a.set_defaults(func=_accuracy)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m polypvision.cli_train``) for when the main CLI is absent."""
    from polypvision.errors import UserError

    parser = argparse.ArgumentParser(prog="polypvision")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"polypvision: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
