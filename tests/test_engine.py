"""The engine's parts (workers, sink writers) and the rule behind them: one model session
shared by several streams at once, each stream's masks computed from its own pixels only."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from polypvision.model.session import Segmenter
from polypvision.pipeline.engine import SinkWriter, Worker, run_offline
from polypvision.pipeline.live import LiveRunner
from polypvision.pipeline.processor import FrameProcessor, StreamSettings
from polypvision.smoothing import SmoothingConfig
from polypvision.sources import LiveSyntheticSource, SyntheticSource

# Smoothing off exactly: a mask then depends on its own frame only, so any run can be checked
# frame by frame against a single-threaded one.
NO_SMOOTHING = SmoothingConfig(alpha=1.0, on=0.5, off=0.5, min_area=0.0, min_peak=0.0)


class Collect:
    """A sink that keeps every result (the export's side of the concurrency test)."""

    name, needs_image = "collect", False

    def __init__(self) -> None:
        self.results: list = []

    def write(self, result) -> None:
        self.results.append(result)

    def prepare(self, summary) -> None:
        pass

    def publish(self) -> None:
        return None

    def abort(self) -> None:
        pass


@pytest.fixture(scope="module")
def toy_256(tmp_path_factory):
    """The toy model at a real model's input size: each call takes long enough for another
    thread to write into shared buffers meanwhile, as the shipped models do."""
    from toy_model import build_toy_model

    return build_toy_model(tmp_path_factory.mktemp("models") / "toy256.onnx", size=256)


def test_live_view_and_export_on_one_session_never_mix_pixels(toy_256):
    """The live view and an export run at once on one model session, on different pictures of
    different sizes; every mask of both equals the mask a single-threaded run makes of its frame."""
    seg = Segmenter(toy_256, "cpu", max_batch=4)
    live_proc = FrameProcessor(seg, settings=StreamSettings(smoothing=NO_SMOOTHING))
    export_proc = live_proc.clone()
    live_src = LiveSyntheticSource(fps=300, width=96, height=72, seed=1)
    live_src.open()
    live_results: list = []
    runner = LiveRunner(live_src, live_proc, on_result=live_results.append)
    runner.start()
    sink = Collect()
    try:
        wake = threading.Event()
        while len(live_results) < 3 and runner.error is None:  # the live view is running ...
            wake.wait(0.01)
        export_src = SyntheticSource(frames=80, width=160, height=120, seed=2)
        export_src.open()
        run_offline(export_src, export_proc, [sink], batch=4)
        live_during_export = len(live_results)
    finally:
        runner.stop()
    assert runner.error is None and len(sink.results) == 80 and live_during_export >= 10
    reference = FrameProcessor(seg, settings=StreamSettings(smoothing=NO_SMOOTHING))
    for r in sink.results + live_results:
        want = reference.process([r.frame], render=False)[0]
        assert np.array_equal(r.mask, want.mask), (
            f"frame {r.index} ({r.frame.image.shape}) got another frame's mask"
        )


def test_worker_keeps_its_error_stops_the_others_and_reports_once():
    stop = threading.Event()
    seen: list = []
    exited = threading.Event()

    def boom() -> None:
        raise ValueError("decoder exploded")

    w = Worker("pv-test", boom, stop, on_error=seen.append, on_exit=exited.set).start()
    assert w.join(5) and exited.is_set()
    assert isinstance(w.error, ValueError) and seen == [w.error] and stop.is_set()
    late = Worker(
        "pv-test-late", boom, stop, on_error=seen.append
    ).start()  # an error while stopping
    assert late.join(5) and isinstance(late.error, ValueError) and len(seen) == 1


def test_sink_writer_blocks_or_drops_as_asked():
    gate = threading.Event()

    class Slow(Collect):
        def write(self, result) -> None:
            gate.wait(5)
            super().write(result)

    dropping = SinkWriter([Slow()], "pv-test-writer", 2, block=False).start()
    for i in range(10):
        dropping.put(i)
    assert (
        dropping.dropped >= 6
    )  # one in the sink, two queued: the rest are counted, not waited for
    gate.set()
    assert dropping.close(5)
    blocking = SinkWriter([Collect()], "pv-test-writer", 2).start()
    for i in range(50):
        assert blocking.put(i)
    assert (
        blocking.close(5) and blocking.sinks[0].results == list(range(50)) and blocking.dropped == 0
    )


def test_offline_batches_are_rejected_below_one(toy_model):
    from polypvision.errors import UserError

    src = SyntheticSource(frames=2, width=32, height=24)
    src.open()
    with pytest.raises(UserError, match="at least 1"):
        run_offline(src, FrameProcessor(Segmenter(toy_model, "cpu")), [Collect()], batch=0)
