"""The options ``annotate`` and ``batch`` share, and the settings values they build.

Both commands parse the same model, overlay and export options; this module declares them once
and turns parsed arguments into the schema's values (:mod:`polypvision.settings`). It exists so
that ``polypvision.cli`` and ``polypvision.batch.cli`` both import it, never each other: the
command modules sit on top of the core, and no other module imports them.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from polypvision.errors import UserError
from polypvision.settings import (
    ENCODER_PRESETS,
    ExportSettings,
    OverlayStyle,
    SmoothingConfig,
    StreamSettings,
    stream_settings,
)

_STYLE, _SMOOTHING, _EXPORT = OverlayStyle(), SmoothingConfig(), ExportSettings()


def positive_float(text: str) -> float:
    """An argparse type: a finite number above zero (``nan`` and ``inf`` are numbers to float())."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number above 0")
    return value


def batch_size(text: str) -> int:
    from polypvision.pipeline.engine import MAX_BATCH

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_BATCH:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_BATCH}, got {value}")
    return value


def add_model_and_provider_args(p: argparse.ArgumentParser, provider_note: str = "") -> None:
    """``--model`` and ``--provider``, as every command that runs a model takes them."""
    p.add_argument(
        "--model",
        type=Path,
        help="ONNX model with a polypvision contract (default: the shipped one)",
    )
    p.add_argument(
        "--provider",
        choices=("auto", "cuda", "cpu"),
        default="auto",
        help="onnxruntime execution provider (default: auto = CUDA when it really runs)"
        + provider_note,
    )


def add_model_args(p: argparse.ArgumentParser) -> None:
    add_model_and_provider_args(p)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="onnxruntime intra-op threads (default: all cores)",
    )


def add_encoder_arg(p: argparse.ArgumentParser, help: str | None = None) -> None:
    p.add_argument(
        "--encoder-preset",
        default=_EXPORT.encoder_preset,
        choices=ENCODER_PRESETS,
        help=help,
    )


def add_overlay_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("overlay and smoothing")
    g.add_argument(
        "--style",
        default="fill,contour",
        help="comma list of fill, contour, box, or 'none' to draw nothing (default: fill,contour)",
    )
    g.add_argument(
        "--color", default="#00ff00", help="overlay colour, '#rrggbb' or 'r,g,b' (default: #00ff00)"
    )
    g.add_argument(
        "--opacity",
        type=float,
        default=_STYLE.opacity,
        help=f"fill opacity 0..1 (default: {_STYLE.opacity:g})",
    )
    g.add_argument(
        "--threshold", type=float, default=None, help="probability threshold (default: the model's)"
    )
    g.add_argument(
        "--smooth-alpha",
        type=float,
        default=None,
        help=(
            "EMA weight of the newest frame, 1 = no temporal smoothing "
            f"(default: {_SMOOTHING.alpha:g})"
        ),
    )
    g.add_argument(
        "--min-area",
        type=float,
        default=None,
        help=(
            "drop detections smaller than this fraction of the frame (default: the model's, "
            "from its contract)"
        ),
    )
    g.add_argument(
        "--hud", action="store_true", help="draw frame index and detection state on the video"
    )
    g.add_argument(
        "--blackout",
        action="store_true",
        help="black out everything outside the endoscope's field of view (removes on-screen text)",
    )


def stream_settings_of(args: argparse.Namespace, command: str = "annotate") -> StreamSettings:
    """The stream settings the overlay options name; a bad value is one line (UserError)."""
    try:
        return stream_settings(
            threshold=args.threshold,
            smooth_alpha=args.smooth_alpha,
            min_area=args.min_area,
            style=args.style,
            color=args.color,
            opacity=args.opacity,
            hud=bool(getattr(args, "hud", False)),
        )
    except ValueError as exc:
        raise UserError(f"{exc}; see 'polypvision {command} --help'") from None


def export_settings_of(args: argparse.Namespace, command: str = "annotate") -> ExportSettings:
    """The export settings the options name; a bad value is one line (UserError)."""
    if args.batch < 1:
        raise UserError(f"--batch must be at least 1, got {args.batch}")
    try:
        return ExportSettings(
            batch=args.batch,
            fps=args.fps,
            encoder_preset=args.encoder_preset,
            blackout=bool(args.blackout),
            strict=bool(getattr(args, "strict", False)),
        ).validated()
    except ValueError as exc:
        raise UserError(f"{exc}; see 'polypvision {command} --help'") from None
