"""``polypvision batch`` and ``polypvision report``:
argument parsing and the checks done once, up front.

Everything that would fail every procedure the same way (a missing or broken model, a bad
setting, an output folder that cannot be written, Ray missing) is refused here in one line,
before any worker starts. What fails one procedure is that procedure's row in summary.csv.

Exit status: 0 when every procedure is done, 1 when some failed (the summary says which),
3 when none failed but some recordings were only partly exported (``annotate``'s PARTIAL and
exit status 3), 2 for bad input, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from polypvision.errors import OutputError, UserError

log = logging.getLogger("polypvision")


class Interrupted(UserError):
    exit_code = 130


def register(sub) -> None:
    from polypvision.cli_args import (
        add_encoder_arg,
        add_model_and_provider_args,
        add_overlay_args,
    )
    from polypvision.events import EventSettings

    ev = EventSettings()

    b = sub.add_parser(
        "batch",
        help="annotate a whole archive of procedures, with a report per procedure",
        description="Annotate every video and frame folder under INPUT (or listed in a text file), "
        "mirroring INPUT's folders under OUTPUT_DIR, with a report per procedure, summary.csv and "
        "index.html. A re-run keeps procedures whose outputs are complete (done earlier) and "
        "redoes the rest.",
    )
    b.add_argument(
        "input",
        type=Path,
        help="folder (searched recursively) or a text file with one source per line",
    )
    b.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="output folder (shared storage on a cluster)",
    )
    b.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: a process pool on this machine (default); ray: one Ray task per procedure",
    )
    b.add_argument(
        "--address",
        default=None,
        help=(
            "Ray cluster to join: 'auto' or ray://host:10001 (default: start a local Ray for "
            "the run)"
        ),
    )
    b.add_argument(
        "--workers",
        type=int,
        default=None,
        help="procedures at a time (local engine and a local Ray; default: cores / threads)",
    )
    b.add_argument(
        "--threads", type=int, default=None, help="model threads per procedure (default: 1)"
    )
    b.add_argument(
        "--gpus-per-task",
        type=float,
        default=0.0,
        help=(
            "Ray: GPUs each task asks for; with it a task uses CUDA when it runs (default: 0, CPU)"
        ),
    )
    b.add_argument(
        "--retries",
        type=int,
        default=None,
        help="attempts after a worker died under a procedure (default: 2)",
    )
    b.add_argument(
        "--runtime-env",
        default=None,
        help='Ray runtime environment as JSON, e.g. \'{"pip": ["polypvision[cpu]==0.9.0"]}\'',
    )
    b.add_argument(
        "--masks",
        action="store_true",
        help="also write one binary PNG mask per frame (<name>_masks/)",
    )
    b.add_argument(
        "--event-min-s",
        type=float,
        default=None,
        help=f"a polyp event lasts at least this long, seconds (default: {ev.min_duration_s:g})",
    )
    b.add_argument(
        "--event-gap-s",
        type=float,
        default=None,
        help=f"detections this close, seconds, are one event (default: {ev.max_gap_s:g})",
    )
    b.add_argument("--batch", type=int, default=4, help="frames per model call (default: 4)")
    b.add_argument(
        "--fps", type=float, default=25.0, help="frame rate for folders of frames (default: 25)"
    )
    add_encoder_arg(b)
    add_model_and_provider_args(b, "; Ray tasks without --gpus-per-task run on the CPU")
    b.add_argument("--quiet", action="store_true", help="no progress line")
    add_overlay_args(b)
    b.set_defaults(func=cmd_batch)

    r = sub.add_parser(
        "report", help="write the HTML report of one annotate output (its --log file)"
    )
    r.add_argument("log", type=Path, help="the per-frame log (.jsonl) written by annotate --log")
    r.add_argument(
        "-o", "--output", type=Path, default=None, help="report file (default: <log>.report.html)"
    )
    r.add_argument("--video", type=Path, default=None, help="annotated video (default: <log>.mp4)")
    r.add_argument("--event-min-s", type=float, default=None)
    r.add_argument("--event-gap-s", type=float, default=None)
    r.set_defaults(func=cmd_report)


def _event_settings(args: argparse.Namespace):
    from polypvision.events import EventSettings

    base = EventSettings()
    return EventSettings(
        base.min_duration_s if args.event_min_s is None else args.event_min_s,
        base.max_gap_s if args.event_gap_s is None else args.event_gap_s,
    ).validated()


def _annotate_settings(args: argparse.Namespace, threads: int):
    """The schema's values from the options, as ``annotate`` builds them from the same ones."""
    from polypvision.batch.settings import AnnotateSettings
    from polypvision.cli_args import export_settings_of, stream_settings_of

    return AnnotateSettings(
        stream=stream_settings_of(args, "batch"),
        export=export_settings_of(args, "batch"),
        provider=args.provider,
        threads=threads,
        masks=args.masks,
    )


def _check_model(path: Path, settings) -> None:
    """Load the model once here (CPU, one thread) so a broken one is one line, not N failures."""
    from polypvision.model.session import Segmenter
    from polypvision.pipeline.processor import FrameProcessor

    seg = Segmenter(path, "cpu", 1, max_batch=settings.batch)
    FrameProcessor(seg, settings=settings.stream)


def _output_dir(out: Path, inp: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {out} is a file; give a folder for the batch's outputs")
    if inp.is_dir() and out.exists() and out.resolve() == inp.resolve():
        raise OutputError(
            f"output folder {out} is the input folder; outputs would land beside (and could "
            "replace) the recordings: choose another folder"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out}: {exc.strerror or exc}") from None
    return out


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UserError(f"{name} must be at least 1, got {value}")


def make_engine(args: argparse.Namespace, workers: int, threads: int):
    from polypvision.batch.engine import DEFAULT_RETRIES

    retries = DEFAULT_RETRIES if args.retries is None else args.retries
    if retries < 0:
        raise UserError(f"--retries must be 0 or more, got {retries}")
    if args.engine == "local":
        if args.address:
            raise UserError("--address is for --engine ray; the local engine runs on this machine")
        from polypvision.batch.local import LocalEngine

        return LocalEngine(workers, threads, retries)
    from polypvision.batch.ray_engine import RayEngine, import_ray

    import_ray()
    env = None
    if args.runtime_env:
        try:
            env = json.loads(args.runtime_env)
        except ValueError:
            raise UserError(
                '--runtime-env must be a JSON object, e.g. \'{"env_vars": {"A": "1"}}\''
            ) from None
    local_cpus = None if args.address else (args.workers * threads if args.workers else None)
    return RayEngine(args.address, threads, args.gpus_per_task, retries, local_cpus, env)


def cmd_batch(args: argparse.Namespace) -> int:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return _batch(args)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return _batch(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _batch(args: argparse.Namespace) -> int:
    from polypvision.batch.discover import discover
    from polypvision.batch.run import INDEX, SUMMARY, default_sizing, machine_cores, run_batch
    from polypvision.batch.settings import JobContext, sha256_file
    from polypvision.model.registry import resolve_model

    _positive("--workers", args.workers)
    _positive("--threads", args.threads)
    workers, threads = default_sizing(machine_cores(), args.threads, args.workers)
    settings = _annotate_settings(args, threads)
    events = _event_settings(args)
    # Absolute paths: a worker (a Ray task on another node) does not share this shell's folder.
    procedures = discover(args.input.absolute(), args.output.absolute())
    out = _output_dir(args.output.absolute(), args.input.absolute())
    model = resolve_model(args.model, args.provider)
    _check_model(model, settings)
    engine = make_engine(args, workers, threads)
    ctx = JobContext(out.resolve(), model.resolve(), sha256_file(model), settings, events)
    if not args.quiet:
        where = f"{workers} worker(s) x {threads} thread(s)" if engine.name == "local" else "Ray"
        print(
            f"polypvision: {len(procedures)} procedure(s) from {args.input} -> {out} ({where})",
            file=sys.stderr,
        )
    try:
        results = run_batch(
            procedures,
            ctx,
            engine,
            show_progress=not args.quiet,
            verbose=args.verbose,
            title=f"PolypVision batch: {args.input}",
        )
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; finished procedures are kept, the running ones left nothing under "
            f"their names ({out / SUMMARY} says which); run the same command again to resume"
        ) from None
    from polypvision.batch.result import DONE_EARLIER, FAILED, PARTIAL

    for line in sorted({r.provider_detail for r in results if r.provider_detail}):
        print(f"polypvision: the model ran on {line}", file=sys.stderr)
    failed = [r for r in results if r.status == FAILED or r.status == "not run"]
    partial = [r for r in results if r.status == PARTIAL]
    done = sum(r.done for r in results)
    print(
        f"{done} of {len(results)} procedure(s) done "
        f"({sum(r.status == DONE_EARLIER for r in results)} already complete); "
        + (f"{len(partial)} partial; " if partial else "")
        + f"summary: {out / SUMMARY}; reports: {out / INDEX}"
    )
    if failed:
        print(
            f"polypvision: {len(failed)} procedure(s) failed; their rows in {out / SUMMARY} say "
            "why",
            file=sys.stderr,
        )
        return 1
    if partial:
        print(
            f"polypvision: {len(partial)} recording(s) only partly exported (frames they announce "
            f"could not be decoded, as annotate's PARTIAL); their rows in {out / SUMMARY} say "
            "how many; exit status 3",
            file=sys.stderr,
        )
        return 3
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from polypvision.report import report_from_log

    settings = (
        _event_settings(args)
        if (args.event_min_s is not None or args.event_gap_s is not None)
        else None
    )
    print(report_from_log(args.log, args.output, args.video, settings))
    return 0
