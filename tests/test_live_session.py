"""The live session tells the truth (issue 23): a recording's stop waits for its writer and says
what was lost (sidecar and message), a pause is a pause (not a signal loss), a live source's
rate is measured when the device does not say it, a stream outage is one gap, a dead source is
a failed source (not "reconnecting" for ever), and why CUDA fell back is onnxruntime's reason.
Injected clocks and gates; no sleeping, no wall-clock bands."""

from __future__ import annotations

import json
import logging
import threading

import numpy as np
import pytest

import polypvision.pipeline.recorder as rec_mod
from polypvision.model.session import Segmenter
from polypvision.pipeline.compose import LiveFrame
from polypvision.pipeline.live import LiveRunner
from polypvision.pipeline.processor import FrameProcessor
from polypvision.pipeline.recorder import Recorder, RecordingCutShort
from polypvision.recording import VideoWriter, sidecar_path
from polypvision.sources.base import FrameSource
from polypvision.types import Frame, SourceInfo
from polypvision.viewer.controller import Phase, SessionController, SessionEvents


@pytest.fixture(scope="module")
def seg(toy_model):
    return Segmenter(toy_model, "cpu")


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _decode(path) -> list[float]:
    import av

    with av.open(str(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(video=0)]


def _shown(proc: FrameProcessor, times, size=(64, 48)) -> list[LiveFrame]:
    img = np.full((size[1], size[0], 3), 120, np.uint8)
    out = []
    for i, t in enumerate(times):
        frame = Frame(i, img, t, t)
        out.append(LiveFrame(frame, proc.process([frame], render=False)[0], proc.settings, img, t))
    return out


# -- 3. stop() waits for the writer, reads its error, and says what was not written
class _HungVideo(VideoWriter):
    """A disk that hangs on the first frame until the recorder tells its writer to stop (the
    gate); ``fail`` makes that frame's write fail then (the disk was full)."""

    gate: threading.Event | None = None
    fail = False

    def write_image(self, bgr, pts=None):
        if self.gate is not None:
            self.gate.wait(30)
        if self.fail:
            raise OSError(28, "No space left on device")
        super().write_image(bgr, pts)


def _hung_recorder(tmp_path, monkeypatch, *, fail: bool) -> Recorder:
    monkeypatch.setattr(rec_mod, "VideoWriter", _HungVideo)
    monkeypatch.setattr(rec_mod, "STOP_TIMEOUT_S", 0.2)
    rec = Recorder(tmp_path / "rec.mp4", 64, 48, 25.0, live=True)
    video = rec.sink.video
    assert isinstance(video, _HungVideo)
    video.gate, video.fail = rec.writer.stop, fail
    return rec


def test_a_stop_that_outlasts_the_writer_says_which_frames_were_not_written(
    tmp_path, seg, monkeypatch
):
    rec = _hung_recorder(tmp_path, monkeypatch, fail=False)
    for item in _shown(FrameProcessor(seg), [i / 25 for i in range(10)]):
        rec.submit(item)
    path = rec.stop()
    assert not rec.writer.worker.alive  # never closed under a writer still encoding
    assert len(_decode(path)) == rec.frames == 1
    assert rec.losses()["unwritten"] == 9
    assert "9 frames" in rec.loss_text() and "not written" in rec.loss_text()
    side = json.loads(sidecar_path(path).read_text())
    assert side["lost"]["unwritten"] == 9


def test_a_writer_error_after_the_stop_timeout_is_read_not_reported_as_saved(
    tmp_path, seg, monkeypatch
):
    rec = _hung_recorder(tmp_path, monkeypatch, fail=True)
    for item in _shown(FrameProcessor(seg), [i / 25 for i in range(10)]):
        rec.submit(item)
    with pytest.raises(RecordingCutShort, match="No space left on device"):
        rec.stop()
    assert not rec.writer.worker.alive


# -- 4. what a recording lost is shown; a live source's rate is measured
def test_the_sidecar_and_the_stop_message_say_what_the_recording_lost(tmp_path, seg):
    times = [i / 25 for i in range(25)]
    times += [1.0 + i / 100 for i in range(1, 5)]  # four frames faster than the recording's rate
    times += [3.0 + i / 25 for i in range(25)]  # 2 s without signal
    rec = Recorder(tmp_path / "rec.mp4", 64, 48, 25.0, live=True)
    for item in _shown(FrameProcessor(seg), times):
        rec.submit(item, dropped=0)
    rec.writer.dropped += 2  # as if a slow disk had made the queue overflow twice
    path = rec.stop()
    side = json.loads(sidecar_path(path).read_text())
    assert side["fps"] == 25.0 and side["frames"] == rec.frames
    lost = side["lost"]
    assert lost["merged"] == rec.sink.merged >= 1 and lost["dropped_by_the_writer"] == 2
    assert len(side["signal_gaps"]) == 1 and side["signal_gaps"][0]["length_s"] == pytest.approx(
        1.96, abs=0.02
    )
    text = rec.loss_text()
    assert "2 frames dropped" in text and "merged" in text and "2.0 s without signal" in text


def test_losses_are_counted_while_recording_not_first_at_the_stop(tmp_path, seg):
    rec = Recorder(tmp_path / "rec.mp4", 64, 48, 25.0, live=True)
    items = _shown(FrameProcessor(seg), [i / 25 for i in range(6)])
    rec.submit(items[0], dropped=4)  # the live view had lost 4 frames before recording started
    assert rec.lost_so_far() == 0
    for item in items[1:]:
        rec.submit(item, dropped=7)  # 3 more lost on the way while recording
    rec.writer.dropped += 1  # and one the disk could not take
    assert rec.lost_so_far() == 4
    assert "3 frames never shown" in rec.loss_text()
    rec.stop()


class _FpslessCapture:
    """A capture card that does not report its rate (CAP_PROP_FPS 0) and delivers 60 fps."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's spelling
        return True

    def read(self):
        self.clock.t += 1 / 60
        return True, np.zeros((24, 32, 3), np.uint8)

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        pass


def test_a_live_source_that_reports_no_rate_is_recorded_at_its_measured_rate(monkeypatch):
    import polypvision.sources.live as live_mod
    from polypvision.sources.synthetic import LiveSyntheticSource

    clock = FakeClock(50.0)
    monkeypatch.setattr(live_mod, "now", clock)

    class Card(LiveSyntheticSource):
        def _make_capture(self):
            return _FpslessCapture(clock)

    src = Card(fps=60, width=32, height=24)
    info = src.open()
    try:
        assert info.fps == pytest.approx(60, rel=0.02)
        assert info.extra["fps_measured"] is True
    finally:
        src.close()


# -- 2. a pause while recording is a pause
class _StubLive(FrameSource):
    """A live source whose frames the test hands to the runner itself."""

    live = True

    def __init__(self) -> None:
        super().__init__()
        self.info = SourceInfo("stub card", 64, 48, 25.0, None, True, False)

    def open(self) -> SourceInfo:
        assert self.info is not None
        return self.info

    def read(self):
        return None

    def close(self) -> None:
        pass


def test_a_pause_while_recording_is_not_a_signal_loss(tmp_path, seg, caplog):
    src = _StubLive()
    clock = FakeClock(100.0)
    runner = LiveRunner(src, FrameProcessor(seg), clock=clock)
    rec = Recorder(tmp_path / "rec.mp4", 64, 48, 25.0, live=True)
    runner.recorder = rec
    img = np.full((48, 64, 3), 90, np.uint8)

    def play(first: int, t0: float) -> None:
        for i in range(25):
            clock.t = t0 + i / 25
            runner._read_one(Frame(first + i, img, clock.t, clock.t - 100.0))
            item = runner.take_display()
            if item is not None:
                runner.shown(item, clock.t)

    play(0, 100.0)
    runner.pause()
    src.dropped += 200  # the card went on delivering while the picture stood still
    clock.t = 109.0
    runner.resume()
    play(25, 109.0)
    assert runner.stats().dropped == 0  # frames not taken while paused are not lost video
    with caplog.at_level(logging.WARNING, logger="polypvision.pipeline.recorder"):
        path = rec.stop()
    assert "no signal" not in caplog.text.lower()
    assert rec.sink.gaps == [] and len(_decode(path)) == 50  # no NO SIGNAL card
    side = json.loads(sidecar_path(path).read_text())
    assert side["signal_gaps"] == [] and len(side["pauses"]) == 1
    assert side["pauses"][0]["length_s"] == pytest.approx(8.04, abs=0.05)
    assert "paused" in rec.loss_text() or rec.loss_text() == ""


# -- the session controller, driven as the window drives it
class _Said(SessionEvents):
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.errors: list[str] = []
        self.signals: list[bool] = []
        self.failures: list[tuple[str, str]] = []
        self.recovered_texts: list[str] = []

    def message(self, text, timeout_ms=0):
        self.messages.append(text)

    def error(self, text):
        self.errors.append(text)

    def signal(self, lost, description):
        self.signals.append(lost)

    def source_failed(self, description, reason):
        self.failures.append((description, reason))

    def recovered(self, text):
        self.recovered_texts.append(text)


@pytest.fixture
def session(tmp_path):
    made = []

    def make(**kw) -> tuple[SessionController, _Said]:
        ev = _Said()
        out = tmp_path / "out"
        out.mkdir(exist_ok=True)
        s = SessionController(ev, provider="cpu", output_dir=lambda: out, **kw)
        made.append(s)
        return s, ev

    yield make
    for s in made:
        s.close()


def _until(cond, what: str, timeout_s: float = 20.0) -> None:
    """Wait for the workers (not a timing assertion)."""
    wake = threading.Event()
    for _ in range(int(timeout_s / 0.01)):
        if cond():
            return
        wake.wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_stop_message_says_what_the_recording_lost(session, toy_model, clip_small):
    s, ev = session(loop=True)
    s.load_model(toy_model)
    s.open(str(clip_small))
    s.toggle_record()
    rec = s.player.recorder
    _until(lambda: rec.frames > 0, "a recorded frame")
    rec.writer.dropped += 3  # as if a slow disk had made the queue overflow
    saved = s.toggle_record()
    assert saved is not None
    said = ev.errors[-1]
    assert said.startswith(f"Recording saved: {saved}") and "3 frames dropped" in said


# -- 9. a stream outage is one gap ----------------------------------------------------------------
class _CutStream:
    """A network stream cut for a while, on a fake clock (quacks like VideoCapture). 25 fps;
    then a read blocks for the 5 s read timeout and the decoder hands out the two frames it
    still held; then reads fail until the grabber reconnects. The new connection delivers a
    burst of buffered frames, then 25 fps again. ``consume`` is the live view taking each frame
    as it comes (not during the burst: nobody takes six frames in six milliseconds)."""

    def __init__(self, clock: FakeClock, consume, reconnected: bool) -> None:
        self.clock, self.consume, self.reconnected = clock, consume, reconnected
        self.n = 0

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's spelling
        return True

    def get(self, prop: int) -> float:
        return 25.0

    def release(self) -> None:
        pass

    def read(self):
        self.n += 1
        img = np.zeros((24, 32, 3), np.uint8)
        if not self.reconnected or self.n == 1 or self.n > 6:
            self.consume()
        if not self.reconnected:
            if self.n <= 25:
                self.clock.t += 0.04
                return True, img
            if self.n == 26:
                self.clock.t += 5.0  # the read timeout, then a frame from before the cut
                return True, img
            self.clock.t += 0.001
            return (True, img) if self.n == 27 else (False, None)
        if self.n <= 6:
            self.clock.t += 0.001
            return True, img
        if self.n > 56:
            return False, None
        self.clock.t += 0.04
        return True, img


def test_a_stream_outage_is_one_gap_without_stale_frames_or_a_dropped_jump(
    tmp_path, seg, monkeypatch
):
    import polypvision.sources.live as live_mod
    from polypvision.pipeline.recorder import RecordingSink
    from polypvision.sources.synthetic import LiveSyntheticSource

    clock = FakeClock(10.0)
    monkeypatch.setattr(live_mod, "now", clock)
    taken: list[Frame] = []
    made: list[_CutStream] = []

    class Stream(LiveSyntheticSource):
        def _make_capture(self):
            cap = _CutStream(clock, consume, reconnected=bool(made))
            made.append(cap)
            return cap

    src = Stream(fps=25, width=32, height=24)

    def consume() -> None:
        if len(made) == 2 and made[1].n > 56:
            src._stop.set()  # the test has seen enough
            return
        f = src.read(timeout_s=0.0)
        if f is not None:
            taken.append(f)

    def backoff(seconds: float) -> bool:
        clock.t += seconds
        return src._stop.is_set()

    src.wait_backoff = backoff
    src.open()
    try:
        assert src._thread is not None
        src._thread.join(20)
        assert len(made) == 2
    finally:
        src.close()
    cut, back = 10.0 + 25 * 0.04, clock.t - 50 * 0.04
    times = [f.t_capture for f in taken]
    assert not [t for t in times if cut + 0.01 < t < back]  # no stale frame stamped 5 s late
    assert src.dropped == 0 and src.stats()["discarded"] >= 5  # the burst is said, not "dropped"
    proc = FrameProcessor(seg)
    sink = RecordingSink(VideoWriter(tmp_path / "rec.mp4", 32, 24, 25.0), 25.0, live=True)
    for f in taken:
        sink.write(LiveFrame(f, None, proc.settings, None, f.t_capture))
    sink.abort()
    assert len(sink.gaps) == 1


# -- 1. a source whose capture thread died is failed, says why, and can be reopened ----------------
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


def dies_once():
    """A simulated card whose driver crashes the first time, and works once reopened."""
    from polypvision.sources.synthetic import LiveSyntheticSource

    class DiesOnce(LiveSyntheticSource):
        opened = 0

        def _make_capture(self):
            DiesOnce.opened += 1
            return _CrashingCapture() if DiesOnce.opened == 1 else super()._make_capture()

    return DiesOnce(fps=30, width=32, height=24)


def test_a_source_that_died_is_failed_says_why_and_can_be_reopened(session, toy_model):
    s, ev = session()
    s.load_model(toy_model)
    s.open("device:sim", source=dies_once())

    def polled(phase):
        s.poll()
        return s.phase is phase

    _until(lambda: polled(Phase.FAILED), "the failed state")
    assert True not in ev.signals  # never "signal lost - reconnecting", which nothing would do
    assert ev.failures and "driver bug" in ev.failures[-1][1]
    s.poll()
    assert len(ev.failures) == 1  # said once
    s.reopen()
    _until(lambda: polled(Phase.PLAYING) and s.player.runner.position > 5, "playing again")


# -- wording ----------------------------------------------------------------------------------
def test_paused_stats_do_not_show_stale_ages_next_to_zero_fps():
    from polypvision.pipeline.stats import StatsSnapshot, format_stats

    s = StatsSnapshot(
        video_fps=0.0,
        overlay_fps=0.0,
        capture_fps=0.0,
        overlay_age_p50_ms=61.0,
        overlay_age_p95_ms=95.4,
        video_delay_p50_ms=3.0,
        video_delay_p95_ms=6.2,
        dropped=0,
        skipped=70,
        frames=300,
        provider="CPU",
        status="paused",
    )
    line = " | ".join(format_stats(s))
    assert "0.0 fps" not in line and "95 ms" not in line and "paused" in line
    assert "dropped 0" in line


def killed_recording(folder) -> None:
    """What a session killed while recording leaves: a locked-no-more fragmented temporary MP4."""
    import os
    import time

    video = VideoWriter(folder / "polypvision-killed.mp4", 64, 48, 25.0, fragmented=True)
    img = np.full((48, 64, 3), 100, np.uint8)
    for i in range(60):
        video.write_image(img, pts=i)
    video._partial.release()  # the kernel drops the lock of a killed process
    old = time.time() - 60
    os.utime(video._partial.path, (old, old))


def test_a_recovered_recording_is_announced_to_the_user(
    session, toy_model, clip_small, tmp_path, caplog
):
    s, ev = session(loop=True)
    killed_recording(tmp_path / "out")
    s.load_model(toy_model)
    s.open(str(clip_small))
    with caplog.at_level(logging.WARNING, logger="polypvision.partials"):
        s.toggle_record()
    assert "recovered" in caplog.text  # not only in the -v log
    assert (
        ev.recovered_texts and "recovered" in ev.recovered_texts[-1]
    )  # the window shows it, not a flash
    assert (tmp_path / "out" / "polypvision-killed.mp4").is_file()


def test_resuming_a_paused_live_view_is_not_announced_as_signal_back(session, toy_model):
    from polypvision.sources.synthetic import LiveSyntheticSource

    s, ev = session()
    s.load_model(toy_model)
    s.open("device:sim", source=LiveSyntheticSource(fps=30, width=32, height=24))
    _until(lambda: s.player.runner.position > 3, "frames")
    s.toggle_play()
    s.poll()
    assert s.phase is Phase.PAUSED
    s.toggle_play()
    _until(lambda: (s.poll(), s.phase is Phase.PLAYING)[1], "playing")
    s.poll()
    assert ev.signals == []  # a pause is not a signal loss, so its end is no "signal back"


def test_the_first_moment_after_a_resume_is_not_signal_lost(seg):
    src = _StubLive()
    clock = FakeClock(100.0)
    runner = LiveRunner(src, FrameProcessor(seg), clock=clock)
    img = np.zeros((48, 64, 3), np.uint8)
    runner._read_one(Frame(0, img, 100.0, 0.0))
    runner.pause()
    clock.t = 130.0
    runner.resume()  # the reader has not read the next frame yet
    assert runner.status() == "ok"
