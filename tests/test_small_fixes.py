"""Small fixes made while the pipeline was rebuilt (issue 15, point 5), one test each:
fixed-batch models, a crashing grabber, onnxruntime's log level, the provider line after an
explicit 'cuda', capture settings asked for independently, one postprocessing for all."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import polypvision.model.session as session
from polypvision.errors import SourceError
from polypvision.model.processing import postprocess
from polypvision.model.session import Segmenter, live_options, set_ort_log_severity
from polypvision.pipeline.live import LiveRunner
from polypvision.pipeline.processor import FrameProcessor, StreamSettings
from polypvision.smoothing import SmoothingConfig
from polypvision.sources import CaptureSource, LiveSyntheticSource, make_source
from polypvision.sources.synthetic import SyntheticClip


def test_a_fixed_batch_model_runs_one_frame_and_any_batch(tmp_path, toy_model):
    """A graph exported with batch 4 ran in exports but failed in live view (one frame)."""
    from toy_model import build_toy_model

    fixed = Segmenter(build_toy_model(tmp_path / "b4.onnx", 64, batch=4), "cpu")
    dynamic = Segmenter(toy_model, "cpu")
    assert fixed.fixed_batch == 4 and dynamic.fixed_batch is None
    clip = SyntheticClip(96, 72)
    frames = [clip.frame(i) for i in range(6)]
    for n in (1, 4, 6):
        got, want = fixed.predict_small(frames[:n]), dynamic.predict_small(frames[:n])
        assert got.shape == want.shape and np.allclose(got, want, atol=1e-6)
    from polypvision.types import Frame

    result = FrameProcessor(fixed).process([Frame(0, frames[0], 0.0, 0.0)], render=False)[0]
    assert result.mask.shape == (72, 96)


class _CrashingCapture:
    """A capture driver that raises from read() after a few frames."""

    def __init__(self) -> None:
        self.n = 0

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's spelling
        return True

    def read(self):
        self.n += 1
        if self.n > 3:
            raise RuntimeError("driver bug")
        return True, np.zeros((24, 32, 3), np.uint8)

    def get(self, prop: int) -> float:
        return 30.0

    def release(self) -> None:
        pass


class _CrashingSource(LiveSyntheticSource):
    def _make_capture(self):
        return _CrashingCapture()


def test_a_crashing_grabber_is_reported_not_a_silent_ok(toy_model):
    src = _CrashingSource(fps=30, width=32, height=24)
    src.open()
    errors: list[BaseException] = []
    runner = LiveRunner(src, FrameProcessor(Segmenter(toy_model, "cpu")), on_error=errors.append)
    runner.start()
    try:
        wake = threading.Event()
        for _ in range(1000):
            if errors:
                break
            wake.wait(0.01)
    finally:
        runner.stop()
    assert (
        len(errors) == 1 and isinstance(errors[0], SourceError) and "driver bug" in str(errors[0])
    )
    assert src.status in ("failed", "ended")
    alone = _CrashingSource(fps=30, width=32, height=24)  # and read() on its own says so too
    alone.open()
    try:
        with pytest.raises(SourceError, match="driver bug"):
            for _ in range(100):
                alone.read(timeout_s=2)
    finally:
        alone.close()


def test_the_ort_log_level_is_restored_after_a_load(toy_model, monkeypatch):
    import onnxruntime as ort

    calls: list[int] = []
    real = ort.set_default_logger_severity
    monkeypatch.setattr(
        ort, "set_default_logger_severity", lambda level: (calls.append(level), real(level))
    )
    monkeypatch.setattr(
        session, "_cuda_unavailable_reason", lambda _ort: None
    )  # as if CUDA might run
    set_ort_log_severity(3)
    try:
        Segmenter(toy_model, "auto")
        # errors (not muted) for the CUDA probe, whose log is read for the reason, then as before
        assert calls[0] == 3 and 4 not in calls and calls[-1] == 3
    finally:
        set_ort_log_severity(session.ORT_DEFAULT_SEVERITY)


def test_the_provider_line_names_an_explicit_cuda_choice(toy_model):
    seg = Segmenter(toy_model, "auto", requested="cuda")
    if seg.provider == "CUDA":
        pytest.skip("CUDA runs here: there is no fallback to describe")
    assert "explicitly ('cuda')" in seg.report.reason and "by 'auto'" not in seg.report.reason
    auto = Segmenter(toy_model, "auto").report  # no GPU at all: said plainly
    assert "by 'auto'" in auto.reason or (auto.expected and "not available" in auto.reason)


def test_capture_rate_and_size_are_asked_for_independently():
    rate_only = make_source("0", fps=60.0)
    size_only = make_source("/dev/video7", width=1280, height=720)
    assert isinstance(rate_only, CaptureSource) and isinstance(size_only, CaptureSource)
    assert rate_only.requested == {"width": None, "height": None, "fps": 60.0, "fourcc": None}
    assert size_only.requested == {
        "width": 1280,
        "height": 720,
        "fps": None,
        "fourcc": None,
    }  # not 25
    assert make_source("synthetic").fps == 25.0


def test_one_postprocessing_for_the_app_and_evaluate(toy_model):
    """evaluate's decision mask and the app's, at any size, come from the same function."""
    seg = Segmenter(toy_model, "cpu")
    off = SmoothingConfig(alpha=1.0, on=0.5, off=0.5, min_area=0.0, min_peak=0.0)
    proc = FrameProcessor(seg, settings=StreamSettings(smoothing=off))
    img = SyntheticClip(150, 90).frame(7)
    prob = seg.predict_small([img])[0]
    from polypvision.types import Frame

    app = proc.process([Frame(0, img, 0.0, 0.0)], render=False)[0].mask
    assert np.array_equal(app, postprocess(prob, 0.5, 150, 90))


def test_live_sessions_leave_the_video_a_core_and_never_spin():
    assert live_options(2) == {"threads": 1, "spinning": False}
    assert live_options(4)["threads"] == 3 and live_options(16)["threads"] is None
