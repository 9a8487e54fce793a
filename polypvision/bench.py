"""`polypvision bench`: every stage against its own limit, the whole pipeline, live latency.

All numbers come from one run on one machine, so ratios between them are meaningful:
- decode only (the input's limit), preprocess only, model only (per model, provider, batch),
  postprocess + smoothing + overlay only, encode only;
- the whole offline pipeline (``annotate``) as FPS and as efficiency = pipeline FPS divided by
  the slowest single stage measured on the same frames;
- live, synchronous view: the clip paced at each rate of ``LIVE_FPS``, each frame shown with its
  own mask; latency from capture to display (p50 / p95 / max) and frames the model skipped;
- live, pass-through view: a simulated capture card at each size and rate of ``PASS_THROUGH``,
  every frame shown with the newest overlay; video rate, overlay rate, overlay age (capture of the
  mask's frame to display) p50 / p95, video delay (capture to display) p95, video drops;
- optionally (``--keras``) Keras ``predict`` and a ``tf.function`` against onnxruntime on the
  same weights (needs the train extra).
Times use ``time.perf_counter()``; each timed loop runs after a warm-up call.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from polypvision import __version__
from polypvision.errors import UserError

MODEL_BUDGET_S = 10.0
PIPELINE_BUDGET_S = 15.0


@dataclass
class Row:
    stage: str
    detail: str
    fps: float
    ms_per_frame: float
    extra: dict[str, Any] = field(default_factory=dict)


def _rate(n: int, seconds: float) -> tuple[float, float]:
    return (n / seconds if seconds > 0 else 0.0), (1000.0 * seconds / n if n else 0.0)


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from polypvision.model.runtime import import_onnxruntime

    ort = import_onnxruntime()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "polypvision": __version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _load_frames(spec: str, n: int):
    from polypvision.sources import make_source

    src = make_source(spec)
    info = src.open()
    frames: list = []
    t0 = time.perf_counter()
    while len(frames) < n:
        f = src.read()
        if f is None:
            if not frames or not info.seekable:
                break
            src.seek(0)  # loop short clips so every stage sees n frames
            continue
        frames.append(f)
    dt = time.perf_counter() - t0
    src.close()
    if not frames:
        raise UserError(f"bench: {spec} delivered no frames")
    return frames, info, dt


def bench_stages(
    frames, info, model_path: Path, provider: str, batches: tuple[int, ...]
) -> tuple[list[Row], dict]:
    from polypvision.model.processing import Preprocessor
    from polypvision.model.session import Segmenter
    from polypvision.pipeline.processor import FrameProcessor

    seg = Segmenter(model_path, provider, max_batch=max(batches))
    name = seg.contract.name
    rows: list[Row] = []
    n = len(frames)
    images = [f.image for f in frames]
    pre = Preprocessor(seg.contract.input, 1)
    pre(images[:1])
    t0 = time.perf_counter()
    for img in images:
        pre([img])
    fps, ms = _rate(n, time.perf_counter() - t0)
    rows.append(
        Row(
            "preprocess",
            f"{name}, resize+scale to {seg.contract.input.width}x{seg.contract.input.height}",
            fps,
            ms,
        )
    )

    model_fps: dict[int, float] = {}
    for b in batches:
        x = Preprocessor(seg.contract.input, b)(images[:b]).copy()
        t0 = time.perf_counter()
        seg.run_batch(x)  # warm-up; also bounds the timed loop of a slow model (MODEL_BUDGET_S)
        warm_s = time.perf_counter() - t0
        reps = max(3, min(n // b, 60 // b + 4, int(MODEL_BUDGET_S / max(warm_s, 1e-6))))
        t0 = time.perf_counter()
        for _ in range(reps):
            seg.run_batch(x)
        fps, ms = _rate(reps * b, time.perf_counter() - t0)
        model_fps[b] = fps
        rows.append(Row("model", f"{name}, {seg.report.name}, batch {b}", fps, ms, {"batch": b}))

    proc = FrameProcessor(seg)
    probs, presence = seg.infer_small(images[:1])
    pres = None if presence is None else float(presence[0])
    proc.finish(frames[0], probs[0], presence=pres)
    t0 = time.perf_counter()
    for f in frames:
        proc.finish(f, probs[0], presence=pres)
    fps, ms = _rate(n, time.perf_counter() - t0)
    rows.append(Row("post+smooth+overlay", f"{name}, {info.width}x{info.height}", fps, ms))
    return rows, {"segmenter": seg, "model_fps": model_fps, "post_fps": fps, "pre_fps": rows[0].fps}


def bench_encode(frames, info, preset: str = "veryfast") -> Row:
    from polypvision.recording import VideoWriter

    with tempfile.TemporaryDirectory() as d:
        w = VideoWriter(Path(d) / "enc.mp4", info.width, info.height, info.fps, preset=preset)
        t0 = time.perf_counter()
        for f in frames:
            w.write_image(f.image)
        w.commit()
        fps, ms = _rate(len(frames), time.perf_counter() - t0)
    return Row(
        "encode", f"{w.backend} {preset}, {info.width}x{info.height}", fps, ms, {"preset": preset}
    )


def bench_pipeline(spec: str, seg, n: int, batch: int, info, preset: str = "veryfast") -> Row:
    from polypvision.pipeline.annotate import Sinks, annotate
    from polypvision.pipeline.processor import FrameProcessor
    from polypvision.recording import VideoWriter
    from polypvision.sources import make_source
    from polypvision.sources.base import FrameSource

    src = make_source(spec)
    src.open()
    limited = _Limited(src, n)
    with tempfile.TemporaryDirectory() as d:
        sinks = Sinks(
            video=VideoWriter(Path(d) / "p.mp4", info.width, info.height, info.fps, preset=preset)
        )
        rep = annotate(
            cast(FrameSource, limited), FrameProcessor(seg), sinks, batch=batch
        )  # duck-typed
    src.close()
    return Row(
        "annotate pipeline",
        f"{seg.contract.name}, batch {batch}, x264 {preset}, decode->model->overlay->encode",
        rep.fps,
        1000.0 / rep.fps if rep.fps else 0.0,
        {"frames": rep.frames, "batch": batch},
    )


class _Limited:
    """Wraps a source: at most n frames, looping seekable clips shorter than n."""

    def __init__(self, src, n: int) -> None:
        self.src, self.n, self.i = src, n, 0
        self.info, self.unreadable = src.info, 0
        self.warnings: list[str] = []

    def read(self):
        from dataclasses import replace

        if self.i >= self.n:
            return None
        f = self.src.read()
        if f is None:
            self.src.seek(0)
            f = self.src.read()
            if f is None:
                return None
        f = replace(f, index=self.i)
        self.i += 1
        return f


PASS_THROUGH = (
    (1920, 1080, 60.0, (1280, 720)),
    (640, 480, 30.0, (640, 480)),
)  # source WxH@fps, display
LIVE_FPS = (25.0, 30.0)  # the synchronous view's paced rates
WARMUP_S = 1.5


def _measure_live(runner, seconds: float) -> dict[str, Any]:
    """Run ``runner`` with a display taking every picture as it comes; figures after a warm-up.

    Rates are counts over the measured seconds; overlay age and video delay are every value
    measured in that time (percentiles of all of them, not of a sliding window).
    """
    from polypvision.pipeline.live import HeadlessDisplay
    from polypvision.pipeline.stats import LatencyWindow

    display = HeadlessDisplay(runner)
    runner.start()
    display.start()
    try:
        time.sleep(WARMUP_S)  # model warm-up and the first pictures are not judged
        runner.overlay_age, runner.video_delay = LatencyWindow(1_000_000), LatencyWindow(1_000_000)
        before = (
            runner.video_rate.total,
            runner.overlay_rate.total,
            runner.capture_rate.total,
            runner.video_dropped,
            runner.slot.dropped,
        )
        time.sleep(seconds)
        after = (
            runner.video_rate.total,
            runner.overlay_rate.total,
            runner.capture_rate.total,
            runner.video_dropped,
            runner.slot.dropped,
        )
        age, delay = runner.overlay_age.percentiles(), runner.video_delay.percentiles()
    finally:
        runner.stop()
        display.worker.join()
    if runner.error is not None:
        raise runner.error
    video, overlay, captured, dropped, skipped = (b - a for a, b in zip(before, after))
    return {
        "video_fps": video / seconds,
        "overlay_fps": overlay / seconds,
        "source_fps": captured / seconds,
        "overlay_age_p50_ms": age[0],
        "overlay_age_p95_ms": age[1],
        "overlay_age_max_ms": age[2],
        "video_delay_p50_ms": delay[0],
        "video_delay_p95_ms": delay[1],
        "video_dropped": dropped,
        "model_skipped": skipped,
        "overlays": overlay,
    }


def bench_live(spec: str, seg, fps: float, seconds: float) -> Row:
    """The synchronous view (each frame with its own mask) on the clip paced at ``fps``."""
    from polypvision.pipeline.live import LiveRunner
    from polypvision.pipeline.processor import FrameProcessor
    from polypvision.sources import make_source

    src = make_source(spec)
    info = src.open()
    runner = LiveRunner(
        src, FrameProcessor(seg), paced=True, speed=fps / info.fps, loop=True, mode="sync"
    )
    m = _measure_live(runner, seconds)
    return Row(
        "live",
        f"{seg.contract.name}, synchronous view, source paced at {fps:g} fps",
        m["overlay_fps"],
        m["overlay_age_p50_ms"],
        {
            "paced_fps": fps,
            "latency_p50_ms": m["overlay_age_p50_ms"],
            "latency_p95_ms": m["overlay_age_p95_ms"],
            "latency_max_ms": m["overlay_age_max_ms"],
            "frames": m["overlays"],
            "dropped": m["model_skipped"],
        },
    )


def bench_passthrough(
    seg, width: int, height: int, fps: float, display: tuple[int, int], seconds: float
) -> Row:
    """The pass-through view on a simulated capture card: video rate and delay,
    overlay rate and age."""
    from polypvision.pipeline.live import LiveRunner
    from polypvision.pipeline.processor import FrameProcessor
    from polypvision.sources.synthetic import LiveSyntheticSource

    src = LiveSyntheticSource(fps=fps, width=width, height=height, prerender=12)
    src.open()
    runner = LiveRunner(src, FrameProcessor(seg), mode="pass-through")
    runner.display_area = display
    m = _measure_live(runner, seconds)
    detail = (
        f"{seg.contract.name}, pass-through, capture card {width}x{height}@{fps:g} (simulated), "
        f"drawn at {display[0]}x{display[1]}"
    )
    return Row(
        "live pass-through",
        detail,
        m["video_fps"],
        m["video_delay_p95_ms"],
        {"source": f"{width}x{height}@{fps:g}", **{k: v for k, v in m.items() if k != "overlays"}},
    )


def _markdown(result: dict) -> str:
    m = result["machine"]
    out = [
        f"Machine: {m['cpu']}, {m['cores']} cores; onnxruntime {m['onnxruntime']}; Python "
        f"{m['python']}; {m['date']}. Input: {result['input']}. Command: `{result['command']}`.",
        "",
        "| stage | detail | FPS | ms/frame | notes |",
        "|---|---|---:|---:|---|",
    ]
    for r in result["rows"]:
        notes = ", ".join(
            f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in r["extra"].items()
            if k not in ("batch",)
        )
        out.append(
            f"| {r['stage']} | {r['detail']} | {r['fps']:.1f} | {r['ms_per_frame']:.1f} | {notes} |"
        )
    return "\n".join(out) + "\n"


def _io_rows(spec: str, frames, info, n: int) -> list[Row]:
    """Decode (a second pass over the input, timed on its own) and encode at both presets."""
    from polypvision.sources import make_source

    src = make_source(spec)
    src.open()
    t0 = time.perf_counter()
    k = 0
    while k < n and src.read() is not None:
        k += 1
    fps, ms = _rate(k, time.perf_counter() - t0)
    src.close()
    return [
        Row("decode", f"{info.description} {info.width}x{info.height}", fps, ms),
        bench_encode(frames, info),
        bench_encode(frames, info, "ultrafast"),
    ]


def _offline_rows(
    args, model: Path, frames, info, n: int, decode_fps: float, encode_fps: dict[str, float]
) -> list[Row]:
    """One model's stages and its annotate pipeline at both encoder presets (and Keras if asked)."""
    rows, ctx = bench_stages(frames, info, model, args.provider, (1, 4))
    seg = ctx["segmenter"]
    best_b = max(ctx["model_fps"], key=ctx["model_fps"].get)
    # A slow model gets fewer pipeline frames (about PIPELINE_BUDGET_S each), so the whole
    # bench stays within minutes whatever is shipped; the row records its frame count.
    n_pipe = max(20, min(n, int(ctx["model_fps"][best_b] * PIPELINE_BUDGET_S)))
    for preset in ("veryfast", "ultrafast"):
        pipe = bench_pipeline(args.source, seg, n_pipe, best_b, info, preset)
        slowest = min(
            decode_fps,
            ctx["pre_fps"],
            ctx["model_fps"][best_b],
            ctx["post_fps"],
            encode_fps[preset],
        )
        pipe.extra["efficiency"] = pipe.fps / slowest if slowest else 0.0
        pipe.extra["slowest_stage_fps"] = slowest
        rows.append(pipe)
    if args.keras:
        from polypvision.training.bench_keras import keras_rows

        rows += [Row(**r) for r in keras_rows(seg, frames)]
    return rows


def run_bench(args) -> int:
    from polypvision.model.registry import shipped_models
    from polypvision.model.session import Segmenter, live_options

    models = list(args.models or [])
    if not models:
        models = [p for p in shipped_models() if not p.name.endswith(".int8.onnx")] + [
            p for p in shipped_models() if p.name.endswith(".int8.onnx")
        ]
    if not models:
        raise UserError("bench: no models given and none shipped in models/; pass --models M.onnx")
    n = max(20, int(args.frames))
    t_start = time.perf_counter()
    frames, info, _ = _load_frames(args.source, n)
    rows: list[Row] = []
    if not args.live_only:
        rows += _io_rows(args.source, frames, info, n)
    for mp in models:
        if not args.live_only:
            rows += _offline_rows(
                args,
                Path(mp),
                frames,
                info,
                n,
                rows[0].fps,
                {"veryfast": rows[1].fps, "ultrafast": rows[2].fps},
            )
        live_seg = Segmenter(
            Path(mp), args.provider, **live_options()
        )  # as the desktop app runs it
        for live_fps in LIVE_FPS:
            rows.append(bench_live(args.source, live_seg, live_fps, args.live_seconds))
        for w, h, fps, display in PASS_THROUGH:
            rows.append(bench_passthrough(live_seg, w, h, fps, display, args.live_seconds))
    result = {
        "machine": _machine(),
        "input": f"{info.description} ({info.width}x{info.height} @ {info.fps:g} fps)",
        "command": "polypvision " + " ".join(sys.argv[1:]),
        "frames": n,
        "seconds": round(time.perf_counter() - t_start, 1),
        "rows": [asdict(r) for r in rows],
    }
    table = _markdown(result)
    print(table)
    from polypvision.fileio import write_text

    if args.json:
        write_text(args.json, json.dumps(result, indent=2))
    if args.markdown:
        write_text(args.markdown, table)
    return 0


__all__ = ["run_bench", "Row"]
