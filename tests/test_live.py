"""The live schedule: pass-through (the video never waits for the model), synchronous review,
honest figures (rates, ages, signal loss; injected clocks, no sleeping), settings swaps, and the
recorder's timeline across a signal loss or a pause."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from polypvision.model.session import Segmenter
from polypvision.pipeline.compose import LiveFrame
from polypvision.pipeline.live import LiveRunner, stall_after_s
from polypvision.pipeline.processor import FrameProcessor
from polypvision.pipeline.recorder import RecordingSink
from polypvision.pipeline.stats import RateMeter, StatsSnapshot, format_stats
from polypvision.recording import VideoWriter
from polypvision.sources import LiveSyntheticSource, SyntheticSource
from polypvision.types import Frame


@pytest.fixture(scope="module")
def seg(toy_model):
    return Segmenter(toy_model, "cpu")


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class GatedProcessor(FrameProcessor):
    """A model call that waits for a gate: a model exactly as slow as the test wants."""

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.gate = threading.Event()

    def infer(self, frames):
        self.gate.wait(20)
        return super().infer(frames)

    def infer_full(self, frames):
        self.gate.wait(20)
        return super().infer_full(frames)


def until(cond, timeout_s: float = 10.0) -> bool:
    """Poll ``cond`` (a wait for the workers, not a timing assertion)."""
    wake = threading.Event()
    for _ in range(int(timeout_s / 0.01)):
        if cond():
            return True
        wake.wait(0.01)
    return cond()


def _collecting(runner: LiveRunner) -> list[LiveFrame]:
    """Take every picture the moment it is handed over, on the thread that hands it over."""
    shown: list[LiveFrame] = []

    def on_frame() -> None:
        item = runner.take_display()
        if item is not None:
            runner.shown(item)
            shown.append(item)

    runner.on_frame = on_frame
    return shown


def test_pass_through_shows_every_frame_while_the_model_is_busy(seg):
    src = SyntheticSource(frames=20, width=64, height=48, stamp=True)
    src.open()
    proc = GatedProcessor(seg)
    runner = LiveRunner(src, proc, paced=False)
    shown = _collecting(runner)
    runner.start()
    try:
        assert until(lambda: len(shown) >= 20)
        # The model has not finished a single frame, and yet every frame was shown, in order.
        assert [i.frame.index for i in shown] == list(range(20))
        assert all(i.overlay is None for i in shown) and runner.display.dropped == 0
        proc.gate.set()
        # The clip ends and pauses: its last frame is shown again with that frame's own mask,
        # and the older result that was in flight never flashes back onto the screen.
        assert until(lambda: shown[-1].overlay is not None)
        assert shown[-1].frame.index == 19 and shown[-1].overlay.index == 19
        assert [i.frame.index for i in shown[20:]] == [19]
    finally:
        proc.gate.set()
        runner.stop()
    assert runner.error is None


class _WaitsForTheModel(SyntheticSource):
    """Every tenth frame waits until the model has caught up with the frames handed out, so the
    video and the model interleave whatever the machine's speed (no timing in the test)."""

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.done = -1
        self.cond = threading.Condition()

    def finished(self, result) -> None:
        with self.cond:
            self.done = max(self.done, result.index)
            self.cond.notify_all()

    def read(self):
        if self._i and self._i % 10 == 0:
            with self.cond:
                self.cond.wait_for(lambda: self.done >= self._i - 1, timeout=10)
        return super().read()


def test_pass_through_draws_the_newest_finished_overlay(seg):
    src = _WaitsForTheModel(frames=120, width=64, height=48)
    src.open()
    runner = LiveRunner(src, FrameProcessor(seg), paced=False, on_result=src.finished)
    shown = _collecting(runner)
    runner.start()
    try:
        assert until(lambda: runner.ended)
    finally:
        runner.stop()
    played = shown[:120]  # then the paused end shows frame 119 once more, with its own mask
    assert [i.frame.index for i in played] == list(range(120))
    with_overlay = [i for i in played if i.overlay is not None]
    assert with_overlay, "the model finished no frame while 120 were shown"
    assert all(i.overlay.index <= i.frame.index for i in with_overlay)
    ages = [i.overlay.index for i in with_overlay]
    assert ages == sorted(ages)  # never an older overlay after a newer one


def test_synchronous_mode_shows_each_frame_with_its_own_mask(seg):
    src = SyntheticSource(frames=15, width=64, height=48)
    src.open()
    runner = LiveRunner(src, FrameProcessor(seg), paced=False, mode="sync")
    shown = _collecting(runner)
    runner.start()
    try:
        assert until(lambda: runner.ended and len(shown) > 0 and shown[-1].frame.index == 14)
    finally:
        runner.stop()
    assert all(i.overlay is not None and i.overlay.frame is i.frame for i in shown)


def test_rates_fall_to_zero_and_never_spike():
    clock = FakeClock(0.0)
    m = RateMeter(window_s=2.0, clock=clock)
    for i in range(180):  # 3 s at 60 fps
        m.tick(i / 60)
    assert m.rate(3.0) == pytest.approx(60, abs=1)
    assert m.rate(4.0) == pytest.approx(30, abs=1)  # the signal went: the rate falls ...
    assert m.rate(5.1) == 0.0  # ... to zero, instead of freezing at 60
    clock.t = 10.0
    # a reconnect: two frames a microsecond apart are two frames, not a million per second
    m.reset()
    m.tick(10.0)
    m.tick(10.000001)
    assert m.rate(10.000002) <= 4.0


def test_signal_loss_is_reported_at_once_and_figures_reset_on_a_model_swap(seg):
    src = LiveSyntheticSource(fps=30, width=32, height=24)
    src.open()
    try:
        clock = FakeClock(100.0)
        runner = LiveRunner(src, FrameProcessor(seg), clock=clock)
        img = np.zeros((24, 32, 3), np.uint8)
        for i in range(30):
            clock.t = 100.0 + i / 30
            runner._read_one(Frame(i, img, clock.t, i / 30))
            runner.shown(runner.take_display(), clock.t + 0.002)
        assert runner.status() == "ok"
        s = runner.stats()
        assert s.video_fps > 0 and s.video_delay_p95_ms == pytest.approx(2.0, abs=0.01)
        clock.t += stall_after_s(30) + 0.01  # nothing arrived for a few frame intervals
        assert runner.status() == "signal lost"
        clock.t += 2.1
        s = runner.stats()
        assert s.status == "signal lost" and s.video_fps == 0.0 and s.capture_fps == 0.0
        runner.overlay_age.add(50.0)
        runner.swap_processor(FrameProcessor(seg))
        s = runner.stats()
        assert (
            s.video_delay_p95_ms == 0.0 and s.overlay_age_p95_ms == 0.0 and runner.latest() is None
        )
    finally:
        src.close()


def test_the_stats_line_has_the_words_scripts_read():
    s = StatsSnapshot(
        video_fps=59.94,
        overlay_fps=27.9,
        capture_fps=60.0,
        overlay_age_p50_ms=61.0,
        overlay_age_p95_ms=95.4,
        video_delay_p50_ms=3.0,
        video_delay_p95_ms=6.2,
        dropped=0,
        skipped=70,
        frames=300,
        provider="CPU",
        status="ok",
    )
    line = " | ".join(format_stats(s))
    assert re.search(r"(^|\| )video 59\.9 fps", line) and "overlay 27.9 fps" in line
    assert "overlay age p95 95 ms" in line and "dropped 0" in line


def test_settings_are_one_value_and_the_smoother_is_retuned_once_per_change(seg):
    proc = FrameProcessor(seg)
    frame = SyntheticSource(frames=1, width=64, height=48)
    frame.open()
    f = frame.read()
    proc.process([f])
    first = proc.smoother
    proc.process([f])
    assert proc.smoother is first  # nothing changed: nothing rebuilt
    proc.settings = replace(proc.settings, threshold=0.7)  # the whole change, in one assignment
    proc.process([f])
    second = proc.smoother
    assert second is not first and second.on == 0.7
    assert (
        second._buf is not None and second._buf is first._buf
    )  # the history carries over: no restart
    proc.process([f])
    assert proc.smoother is second


def test_clone_shares_the_model_but_not_the_stream_state(seg):
    a = FrameProcessor(seg, threshold=0.6)
    b = a.clone()
    assert b.segmenter is a.segmenter and b.settings == a.settings
    assert b.smoother is not a.smoother and b._pre is not a._pre
    with pytest.raises(AttributeError, match="immutable"):
        seg.max_batch = 3


def _timeline(path) -> list[float]:
    import av

    with av.open(str(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(video=0)]


def _live_frames(proc, times):
    img = np.full((48, 64, 3), 120, np.uint8)
    out = []
    for i, t in enumerate(times):
        frame = Frame(i, img, t, t)
        out.append(LiveFrame(frame, proc.process([frame], render=False)[0], proc.settings, img, t))
    return out


def test_a_recording_keeps_a_signal_gap_and_marks_it(tmp_path, seg, caplog):
    proc = FrameProcessor(seg)
    times = [i / 25 for i in range(25)] + [3.0 + i / 25 for i in range(25)]  # 2 s without signal
    sink = RecordingSink(VideoWriter(tmp_path / "rec.mp4", 64, 48, 25.0), 25.0, live=True)
    with caplog.at_level(logging.WARNING, logger="polypvision.pipeline.recorder"):
        for item in _live_frames(proc, times):
            sink.write(item)
    sink.prepare({})
    path = sink.publish()
    t = _timeline(path)
    assert len(t) == 51  # every frame, plus the card that opens the gap
    assert t[25] == pytest.approx(1.0, abs=0.05) and t[26] == pytest.approx(3.0, abs=0.05)
    assert sink.gaps and sink.gaps[0][1] == pytest.approx(2.04, abs=0.01)
    assert "no signal for 2.0 s" in caplog.text


def test_a_pause_while_reviewing_a_file_is_squeezed_out(tmp_path, seg):
    proc = FrameProcessor(seg)
    times = [i / 25 for i in range(25)] + [
        30.0 + i / 25 for i in range(25)
    ]  # paused for half a minute
    sink = RecordingSink(VideoWriter(tmp_path / "rec.mp4", 64, 48, 25.0), 25.0, live=False)
    for item in _live_frames(proc, times):
        sink.write(item)
    sink.prepare({})
    t = _timeline(sink.publish())
    assert len(t) == 50 and max(np.diff(t)) == pytest.approx(0.04, abs=0.005)
    assert t[-1] == pytest.approx(Fraction(49, 25), abs=0.01)


def test_the_display_picture_is_drawn_at_its_own_size_with_the_same_outline(seg):
    """The overlay on a display-size picture is the model's mask scaled to that size (not a
    full-size drawing shrunk), and a picture is reused only once nobody holds it."""
    from polypvision.model.processing import mask_to_size
    from polypvision.overlay import OverlayStyle
    from polypvision.pipeline.compose import Compositor, fit_size
    from polypvision.pipeline.processor import StreamSettings
    from polypvision.sources.synthetic import SyntheticClip

    img = SyntheticClip(320, 240).frame(3)
    result = FrameProcessor(seg).process([Frame(0, img, 0.0, 0.0)], render=False)[0]
    assert result.detection.present
    solid = StreamSettings(style=OverlayStyle(contour=False, opacity=1.0, color=(255, 0, 0)))
    c = Compositor()
    size = fit_size(320, 240, (203, 400))
    assert size == (203, 152)
    shown = c.compose(img, result, solid, size)
    want = mask_to_size(result.mask_small, *size) > 0
    assert shown.shape == (152, 203, 3) and np.array_equal(
        np.all(shown == (255, 0, 0), axis=2), want
    )
    held = id(shown)
    again = c.compose(img, result, solid, size)
    assert id(again) != held  # the first picture is still on screen: never drawn over
    del shown
    assert id(c.compose(img, None, solid, size)) == held  # released: reused, nothing allocated
