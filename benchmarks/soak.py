"""Soak test: many frames through the live pipeline; memory must stay flat, queues bounded.

    python benchmarks/soak.py                      # 20,000 frames, toy model, 320x240 at 500 fps
    python benchmarks/soak.py --model models/x.onnx --frames 50000 --record /tmp/soak.mp4

A fast synthetic "capture card" (about 50 frames rendered once, then cycled) feeds the same
grabber thread, one-slot hand-off and two runner workers (pv-reader, pv-infer) the desktop app
uses, with a headless display taking every picture as the window would, optionally with the
recorder. Every half second the script samples resident
memory (VmRSS from /proc/self/status), the thread count and the depth of every hand-off. It
prints the figures and exits 1 if memory grew by ``--max-growth-mb`` (50) or more after the
warm-up, a hand-off held more than its bound, a thread leaked, or the runner reported an error.
Not a default test (it takes minutes); tests/reliability/test_rel_soak.py runs it with 300 frames.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from polypvision.model.session import Segmenter  # noqa: E402
from polypvision.pipeline.live import HeadlessDisplay, LiveRunner  # noqa: E402
from polypvision.pipeline.processor import FrameProcessor  # noqa: E402
from polypvision.sources.live import LiveSource  # noqa: E402
from polypvision.sources.synthetic import SyntheticClip  # noqa: E402

MB = 1024 * 1024


def rss_bytes() -> int:
    """Resident set size now (Linux /proc; ru_maxrss elsewhere, which is the peak)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _CycleCapture:
    """Quacks like cv2.VideoCapture: pre-rendered frames in a loop,
    paced at ``fps`` (0: unpaced)."""

    def __init__(self, frames: list[np.ndarray], fps: float) -> None:
        self.frames, self.fps = frames, fps
        self.i = 0
        self._next_t = time.perf_counter()
        self._open = True

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's spelling
        return self._open

    def read(self):
        if not self._open:
            return False, None
        if self.fps > 0:
            delay = self._next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self._next_t = max(self._next_t + 1.0 / self.fps, time.perf_counter() - 1.0 / self.fps)
        img = self.frames[self.i % len(self.frames)]
        self.i += 1
        return True, img

    def get(self, prop: int) -> float:
        h, w = self.frames[0].shape[:2]
        return {
            cv2.CAP_PROP_FPS: self.fps,
            cv2.CAP_PROP_FRAME_WIDTH: w,
            cv2.CAP_PROP_FRAME_HEIGHT: h,
        }.get(prop, 0.0)

    def release(self) -> None:
        self._open = False


class CycleSource(LiveSource):
    """A fast synthetic capture card: ``distinct`` frames rendered once, then cycled."""

    def __init__(self, width: int, height: int, fps: float, distinct: int = 50) -> None:
        super().__init__()
        clip = SyntheticClip(width, height, seed=3)
        self._frames = [clip.frame(i * 5) for i in range(distinct)]
        self.fps = fps

    def _describe(self) -> str:
        h, w = self._frames[0].shape[:2]
        return f"soak source {w}x{h}@{self.fps:g}"

    def _make_capture(self) -> _CycleCapture:
        return _CycleCapture(self._frames, self.fps)


def toy_model(folder: Path) -> Path:
    """The tests' tiny ONNX model (needs the ``onnx`` package from the dev extra)."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from toy_model import build_toy_model
    except ImportError as exc:
        raise SystemExit(
            f"soak: cannot build the toy model ({exc}); pass --model PATH.onnx"
        ) from None
    return build_toy_model(folder / "toy.onnx", size=64)


RATES = ("capture_rate", "overlay_rate", "video_rate")
WINDOWS = ("overlay_age", "video_delay")


def _depths(runner: LiveRunner, source: CycleSource, recorder: Any) -> dict[str, int]:
    d = {
        "slot": int(runner.slot._item is not None),
        "display_slot": int(runner.display._item is not None),
        "source_slot": int(source._latest is not None),
    }
    for name in RATES:
        d[f"{name}_window"] = len(getattr(runner, name)._t)
    for name in WINDOWS:
        d[f"{name}_window"] = len(getattr(runner, name))
    if recorder is not None:
        d["recorder_queue"] = recorder.pending
    return d


def _bounds(runner: LiveRunner, recorder: Any, max_rate: float) -> dict[str, int]:
    b = {"slot": 1, "display_slot": 1, "source_slot": 1}
    for name in RATES:  # time windows: at most window_s x rate entries
        b[f"{name}_window"] = int(2 * getattr(runner, name).window_s * max_rate) + 10
    for name in WINDOWS:
        b[f"{name}_window"] = getattr(runner, name)._v.maxlen
    if recorder is not None:
        b["recorder_queue"] = recorder.writer.queue.maxsize
    return b


def run(args: argparse.Namespace) -> dict[str, Any]:
    w, h = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="pv-soak-") as tmp:
        model = args.model or toy_model(Path(tmp))
        seg = Segmenter(model, args.provider, threads=args.threads)
        processor = FrameProcessor(seg)
        source = CycleSource(w, h, args.fps)
        threads_before = threading.active_count()
        rss_launch = rss_bytes()
        source.open()
        recorder = None
        if args.record:
            from polypvision.pipeline.recorder import Recorder

            recorder = Recorder(Path(args.record), w, h, args.fps or 30.0, live=True)
        done = threading.Event()
        count = [0]

        def on_result(_r) -> None:
            count[0] += 1
            if count[0] >= args.frames:
                done.set()

        runner = LiveRunner(source, processor, on_result=on_result, on_error=lambda e: done.set())
        runner.recorder = recorder
        display = HeadlessDisplay(runner)
        warm = max(200, args.frames // 20)
        samples: list[dict[str, Any]] = []
        peak: dict[str, int] = {}
        rss_start = None
        t0 = time.perf_counter()
        runner.start()
        display.start()
        last_print = t0
        while not done.wait(0.5):
            s = {
                "t": round(time.perf_counter() - t0, 1),
                "frames": count[0],
                "rss_mb": round(rss_bytes() / MB, 1),
                "threads": threading.active_count(),
                **_depths(runner, source, recorder),
            }
            samples.append(s)
            for k, v in s.items():
                if k not in ("t", "frames", "rss_mb"):
                    peak[k] = max(peak.get(k, 0), int(v))
            if rss_start is None and count[0] >= warm:
                rss_start = rss_bytes()
            if not args.quiet and time.perf_counter() - last_print >= 5:
                last_print = time.perf_counter()
                print(
                    f"  {s['t']:7.1f} s  {count[0]:6d} frames  rss {s['rss_mb']:7.1f} MB  "
                    f"threads {s['threads']}",
                    file=sys.stderr,
                )
            if args.timeout and time.perf_counter() - t0 > args.timeout:
                break
        elapsed = time.perf_counter() - t0
        rss_end = rss_bytes()
        final_depths = _depths(runner, source, recorder)
        threads_running = threading.active_count()
        stats = runner.stats()
        runner.stop()
        display.worker.join()
        rec_path = None
        if recorder is not None:
            rec_path = str(recorder.stop())
        source.close()
        time.sleep(0.2)
        threads_after = threading.active_count()
        if rss_start is None:
            rss_start = rss_end
        result = {
            "frames": count[0],
            "seconds": round(elapsed, 1),
            "fps": round(count[0] / elapsed, 1) if elapsed else 0.0,
            "size": f"{w}x{h}",
            "source_fps": args.fps,
            "model": str(model if args.model else "toy (64x64)"),
            "provider": str(seg.report),
            "captured": source.grabbed,
            "dropped": {
                "model_slot": runner.slot.dropped,
                "display_slot": runner.display.dropped,
                "source_slot": source.dropped,
                "recorder": recorder.dropped if recorder is not None else None,
            },
            "rss_mb": {
                "launch": round(rss_launch / MB, 1),
                "start": round(rss_start / MB, 1),
                "end": round(rss_end / MB, 1),
                "growth": round((rss_end - rss_start) / MB, 1),
                "growth_since_launch": round((rss_end - rss_launch) / MB, 1),
                "peak": max((s["rss_mb"] for s in samples), default=round(rss_end / MB, 1)),
            },
            "warmup_frames": warm,
            "threads": {
                "before": threads_before,
                "running": threads_running,
                "after_stop": threads_after,
                "peak": peak.get("threads", threads_running),
            },
            "depth_peak": {k: v for k, v in peak.items() if k != "threads"},
            "depth_end": final_depths,
            "depth_bounds": _bounds(
                runner, recorder, max(args.fps, source.grabbed / max(elapsed, 1e-3))
            ),
            "overlay_age_ms": {
                "p50": round(stats.overlay_age_p50_ms, 2),
                "p95": round(stats.overlay_age_p95_ms, 2),
            },
            "error": repr(runner.error) if runner.error else None,
            "recording": rec_path,
            "samples": len(samples),
        }
    problems = []
    if result["frames"] < args.frames:
        problems.append(f"only {result['frames']} of {args.frames} frames processed")
    if result["rss_mb"]["growth"] >= args.max_growth_mb:
        problems.append(
            f"resident memory grew {result['rss_mb']['growth']} MB after warm-up (limit "
            f"{args.max_growth_mb})"
        )
    for k, bound in result["depth_bounds"].items():
        if result["depth_peak"].get(k, 0) > bound:
            problems.append(f"{k} held {result['depth_peak'][k]} items (bound {bound})")
    if result["threads"]["after_stop"] > result["threads"]["before"]:
        problems.append(
            f"threads leaked: {result['threads']['before']} before, "
            f"{result['threads']['after_stop']} after stop"
        )
    if result["error"]:
        problems.append(f"runner error: {result['error']}")
    result["problems"] = problems
    result["ok"] = not problems
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Soak the live pipeline: memory, threads and queue depths."
    )
    p.add_argument("--frames", type=int, default=20000, help="frames to process (default: 20000)")
    p.add_argument(
        "--fps",
        type=float,
        default=500.0,
        help="source frame rate, 0 = as fast as possible (default: 500)",
    )
    p.add_argument("--size", default="320x240", help="frame size WxH (default: 320x240)")
    p.add_argument(
        "--model", type=Path, help="ONNX model (default: the tests' tiny toy model, fast)"
    )
    p.add_argument("--provider", choices=("auto", "cuda", "cpu"), default="cpu")
    p.add_argument(
        "--threads", type=int, default=1, help="onnxruntime intra-op threads (default: 1)"
    )
    p.add_argument(
        "--record", type=Path, help="also record the annotated stream to this MP4 (recorder queue)"
    )
    p.add_argument(
        "--max-growth-mb", type=float, default=50.0, help="fail at this RSS growth after warm-up"
    )
    p.add_argument(
        "--timeout", type=float, default=0.0, help="give up after this many seconds (0: never)"
    )
    p.add_argument("--json", type=Path, help="also write the figures as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    for problem in result["problems"]:
        print(f"soak: FAIL: {problem}", file=sys.stderr)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
