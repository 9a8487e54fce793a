"""The ``polypvision`` command: the only place that parses arguments and sets up logging.

Subcommands: ``gui`` (the default with no arguments), ``annotate``, ``bench``, ``devices``,
``info``, ``demo``, from :mod:`polypvision.cli_train`, ``train``, ``export`` and ``evaluate``, and
from :mod:`polypvision.batch.cli`, ``batch`` and ``report``. Every user-facing failure is one line
on stderr and exit status 2."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import NoReturn

from polypvision import __version__
from polypvision.cli_args import (
    add_encoder_arg,
    add_model_args,
    add_overlay_args,
    batch_size,
    export_settings_of,
    positive_float,
    stream_settings_of,
)
from polypvision.errors import OutputError, UserError, cause_line

log = logging.getLogger("polypvision")


# The options annotate and batch share, declared once (batch.cli imports them from there, not
# from this module: nothing imports the command modules).
_add_model_args = add_model_args
_add_overlay_args = add_overlay_args


class Parser(argparse.ArgumentParser):
    """Bad arguments get the one error line every other failure gets (not a usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"polypvision: error: {message}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="polypvision", description="Real-time polyp segmentation on colonoscopy video."
    )
    parser.add_argument("--version", action="version", version=f"polypvision {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (to stderr)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    a = sub.add_parser(
        "annotate",
        help="write an annotated copy of a video or frame folder",
        description="Every input frame out, in order, with the overlay burned in.",
    )
    a.add_argument(
        "input",
        help="video file, folder of frames, frame pattern (frames/%%d.png), 'demo' or 'synthetic' "
        "(a file of that name wins; builtin:demo and builtin:synthetic always mean the keywords)",
    )
    a.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="output video: .mp4 (or .m4v, .mov, .mkv), H.264",
    )
    a.add_argument(
        "--log", type=Path, help="per-frame detection log (JSON lines) + .meta.json sidecar"
    )
    a.add_argument("--masks", type=Path, help="folder for one binary PNG mask per frame")
    a.add_argument(
        "--batch", type=batch_size, default=4, help="frames per model call, 1-64 (default: 4)"
    )
    a.add_argument(
        "--fps",
        type=positive_float,
        default=25.0,
        help="frame rate for folders of frames (default: 25)",
    )
    a.add_argument(
        "--strict",
        action="store_true",
        help="write nothing if any frame of the input cannot be decoded (default: write the "
        "decodable frames and exit with status 3)",
    )
    add_encoder_arg(
        a,
        help=(
            "x264 speed/size trade-off (default: veryfast; ultrafast is ~3x cheaper, files "
            "~2-3x larger)"
        ),
    )
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_model_args(a)
    _add_overlay_args(a)
    a.set_defaults(func=cmd_annotate, quick_interrupt=True)

    g = sub.add_parser("gui", help="open the desktop app (default with no command)")
    g.add_argument(
        "source",
        nargs="?",
        default=None,
        help="file, folder, device index, /dev/videoN or stream URL",
    )
    _add_model_args(g)
    g.set_defaults(func=cmd_gui)

    b = sub.add_parser("bench", help="measure every stage and the whole pipeline")
    b.add_argument(
        "source", nargs="?", default="demo", help="input to measure on (default: the demo clip)"
    )
    b.add_argument(
        "--models", nargs="*", type=Path, help="models to measure (default: the shipped ones)"
    )
    b.add_argument("--provider", choices=("auto", "cuda", "cpu"), default="auto")
    b.add_argument("--frames", type=int, default=150, help="frames per measurement (default: 150)")
    b.add_argument(
        "--live-seconds", type=float, default=8.0, help="seconds per live-mode measurement"
    )
    b.add_argument(
        "--live-only",
        action="store_true",
        help="only the live rows (synchronous and pass-through views), not the stages or annotate",
    )
    b.add_argument(
        "--keras",
        action="store_true",
        help="also time Keras predict / tf.function (needs the train extra)",
    )
    b.add_argument("--json", type=Path, help="also write the results as JSON")
    b.add_argument("--markdown", type=Path, help="also write the table as Markdown")
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("devices", help="list capture devices")
    d.set_defaults(func=cmd_devices)

    i = sub.add_parser(
        "info",
        help="show the onnxruntime package, the provider that really runs, and a model's contract",
    )
    _add_model_args(i)
    i.set_defaults(func=cmd_info)

    m = sub.add_parser("demo", help="write the demo clip and print its path")
    m.set_defaults(func=cmd_demo)

    try:
        from polypvision import cli_train
    except ModuleNotFoundError:  # pragma: no cover - only while the module is being written
        cli_train = None  # type: ignore[assignment]
    if cli_train is not None:
        cli_train.register(sub)
    from polypvision.batch import cli as batch_cli

    batch_cli.register(sub)
    return parser


# -- shared helpers -------------------------------------------------------------------------------
def load_segmenter(args: argparse.Namespace, max_batch: int = 8):
    from polypvision.model.registry import resolve_model
    from polypvision.model.session import Segmenter

    seg = Segmenter(
        resolve_model(args.model, args.provider), args.provider, args.threads, max_batch=max_batch
    )
    log.info("model %s on %s", seg.contract.name, seg.report)
    return seg


def make_processor(args: argparse.Namespace, segmenter, blackout=None):
    """A processor for the overlay options in ``args`` (the schema's values, one line on a bad
    one)."""
    from dataclasses import replace

    from polypvision.pipeline.processor import FrameProcessor

    stream = replace(stream_settings_of(args), blackout=blackout)
    return FrameProcessor(segmenter, settings=stream)


PROGRESS_LOG_EVERY_S = 5.0  # annotate's progress in a log (not a terminal): a line this often


class ProgressBar:
    """annotate's progress on stderr: frames done of the total, speed and time left (a tqdm bar
    on a terminal; in a log, a line every ``PROGRESS_LOG_EVERY_S`` and one when complete)."""

    def __init__(self, enabled: bool) -> None:
        from polypvision.progress import Progress

        self.bar = Progress(unit="frame", enabled=enabled, every_s=PROGRESS_LOG_EVERY_S)

    def __call__(self, p) -> None:
        self.bar.update_to(p.done, p.total)

    def close(self) -> None:
        self.bar.close()


# -- commands --------------------------------------------------------------------------------------
def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


# SIGTERM (a job scheduler, ``timeout``, shutdown) and SIGHUP (a closed terminal or ssh session)
# clean up exactly like Ctrl-C.
STOP_SIGNALS = ("SIGTERM", "SIGHUP")


def _quitting_at_once(handler: object) -> bool:
    # By name: under ``python -m`` the handler lives in the module __main__, not
    # polypvision.__main__.
    return getattr(handler, "__name__", "") == "quit_at_once"


def interrupts_raise() -> None:
    """From here on Ctrl-C, SIGTERM and SIGHUP raise KeyboardInterrupt (and outputs are cleaned
    up) instead of ending the process at once, as they do while nothing has been written (see
    polypvision.__main__)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if _quitting_at_once(signal.getsignal(signal.SIGINT)):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in STOP_SIGNALS:
        if hasattr(signal, name) and _quitting_at_once(signal.getsignal(getattr(signal, name))):
            signal.signal(getattr(signal, name), _raise_interrupt)


def cmd_annotate(args: argparse.Namespace) -> int:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return _annotate(args)
    early = signal.getsignal(signal.SIGINT)
    handler = (
        early if _quitting_at_once(early) else _raise_interrupt
    )  # nothing written yet: quit at once
    previous = {}
    try:
        for name in STOP_SIGNALS:
            if hasattr(signal, name):
                previous[name] = signal.signal(getattr(signal, name), handler)
        return _annotate(args)
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)


def _check_outputs(args: argparse.Namespace) -> Path:
    """Refuse, before anything runs, outputs that would overwrite an input, each other, a device,
    or that name a container annotate does not write."""
    from polypvision.recording import CONTAINERS, check_output_path, sidecar_path
    from polypvision.sources import input_paths

    inputs = input_paths(args.input)
    out = check_output_path(args.output, inputs)
    if out.suffix.lower() not in CONTAINERS:
        raise OutputError(
            f"output {out} must end in {', '.join(CONTAINERS)} (annotate writes H.264 in MP4, "
            f"MOV or Matroska); for example {out.with_suffix('.mp4')}"
        )
    if args.log is not None:
        check_output_path(args.log, (*inputs, out), what="--log")
        check_output_path(sidecar_path(args.log), (*inputs, out, args.log), what="--log's sidecar")
    return out


def _sweep(args: argparse.Namespace, out: Path) -> None:
    """Clean up what killed runs left where this one writes; say what was done."""
    from polypvision.partials import sweep

    folders = {
        p.parent.resolve()
        for p in (out, args.log, args.masks)
        if p is not None and p.parent.is_dir()
    }
    for folder in sorted(folders):
        for msg in sweep(folder):
            print(f"polypvision: note: {msg}", file=sys.stderr)


def _annotate(args: argparse.Namespace) -> int:
    from polypvision.pipeline.export import ExportTargets, export, report_verdict
    from polypvision.sources import input_paths, make_source, source_kind

    if source_kind(args.input) in ("device", "stream"):
        raise UserError(
            f"annotate exports recordings; {args.input} is a live source: use 'polypvision gui' "
            "to record it"
        )
    out = _check_outputs(args)
    stream, settings = stream_settings_of(args), export_settings_of(args)
    source = make_source(args.input, fps=args.fps)
    source.open()
    try:
        _sweep(args, out)
        seg = load_segmenter(args, max_batch=args.batch)
    except BaseException:
        source.close()
        raise
    targets = ExportTargets(out, args.log, args.masks, protect=tuple(input_paths(args.input)))
    bar = ProgressBar(not args.quiet)
    try:
        # interrupts_raise: the first temporary file is next, Ctrl-C must now clean up
        report = export(
            source,
            args.input,
            seg,
            stream,
            settings,
            targets,
            progress=bar,
            before_write=interrupts_raise,
        )
    finally:
        bar.close()
    info = source.info
    assert info is not None  # opened above
    for w in report.warnings:
        print(f"polypvision: warning: {w}", file=sys.stderr)
    if (
        report.resized and "frame_sizes_in_input" not in report.facts
    ):  # a folder has said so already
        print(
            f"polypvision: warning: {report.resized} frame(s) of another size than the video's "
            f"{info.width}x{info.height} were letterboxed into it",
            file=sys.stderr,
        )
    print(
        f"wrote {report.outputs['video']}: {report.frames} frames in {report.seconds:.1f} s "
        f"({report.fps:.1f} fps), polyp in {report.frames_with_polyp}, model on {seg.report.name}"
        + (f", {report.unreadable} unreadable frame(s) skipped" if report.unreadable else "")
    )
    if source_kind(args.input) == "demo":
        from polypvision.demo import demo_verdict

        print(demo_verdict(report.polyp_frames, report.frames))
    partial = report_verdict(report)
    if partial is not None:
        print(f"{partial}; exit status 3 (with --strict nothing is written)")
        return 3
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        from polypvision.gui.app import run_app
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in ("PySide6", "shiboken6"):
            raise UserError(
                "the desktop app is not installed (no PySide6); pip install 'polypvision[app]'"
            ) from None
        if exc.name is None:  # PySide6 is there but a system library it loads is not
            raise UserError(
                f"the desktop app cannot load Qt ({cause_line(exc)}); install the system libraries "
                "Qt needs (scripts/setup.sh lists them for Debian/Ubuntu)"
            ) from None
        raise
    return run_app(
        source=getattr(args, "source", None),
        model=getattr(args, "model", None),
        provider=getattr(args, "provider", "auto"),
    )


def cmd_bench(args: argparse.Namespace) -> int:
    from polypvision.bench import run_bench

    return run_bench(args)


def cmd_devices(args: argparse.Namespace) -> int:
    from polypvision.sources import list_capture_devices

    devs = list_capture_devices()
    print("\n".join(devs) if devs else "no capture devices found (/dev/video*)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from polypvision.model import runtime
    from polypvision.paths import models_dir

    seg = load_segmenter(args)  # a one-line error saying what to install when there is no runtime
    ort = runtime.import_onnxruntime()
    name, version = runtime.runtime_package() or ("onnxruntime", ort.__version__)
    info = {
        "polypvision": __version__,
        "runtime": {
            "package": name,
            "version": version,
            "providers_available": list(ort.get_available_providers()),
        },
        "provider": str(seg.report),
        "models_dir": str(models_dir()),
        "path": str(seg.path),
        "contract": seg.contract.to_dict(),
    }
    if runtime.conflict():
        info["runtime"]["warning"] = runtime.conflict()
    print(json.dumps(info, indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from polypvision.demo import demo_clip_path

    print(demo_clip_path())
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv or ["gui"])
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="polypvision: %(levelname)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if not getattr(args, "quick_interrupt", False):
            interrupts_raise()
        return int(args.func(args) or 0)
    except UserError as exc:
        # Ctrl-C is the user's choice, not an error (batch says what it kept, exit status 130)
        what = "" if exc.exit_code == 130 else "error: "
        print(f"polypvision: {what}{exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("polypvision: interrupted; no output was written", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        if exc.name != "onnxruntime":  # training and export import it directly
            raise
        from polypvision.model.runtime import INSTALL_HINT

        print(f"polypvision: error: no ONNX runtime is installed; {INSTALL_HINT}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        err = OutputError(f"{exc.strerror or exc}{where}; check the path and free disk space")
        print(f"polypvision: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
