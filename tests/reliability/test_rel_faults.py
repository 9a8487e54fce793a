"""Faults during a run: full disks, vanished folders, cancel, Ctrl-C, crashing workers, unplugged
sources and failing recorders. Nothing already written is lost; nothing half-written is left.

Cancel of a video-only export is also in ``tests/test_annotate.py::test_cancel_leaves_nothing``
and a raw OSError from a writer in
``tests/test_annotate.py::test_write_failure_keeps_existing_output_and_removes_temp``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from relhelpers import assert_one_error_line, decode_all, lines, partials

from polypvision.errors import OutputError
from polypvision.model.session import Segmenter
from polypvision.pipeline.annotate import Cancelled, Sinks, annotate
from polypvision.pipeline.live import LiveRunner
from polypvision.pipeline.processor import FrameProcessor
from polypvision.pipeline.recorder import Recorder
from polypvision.recording import DetectionLog, MaskWriter, VideoWriter
from polypvision.sources import LiveSyntheticSource, SyntheticSource

FAULTY = Path(__file__).with_name("_faulty_cli.py")


def _faulty(fault: str, after: int, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(FAULTY), fault, str(after), "--", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def seg(toy_model):
    return Segmenter(toy_model, "cpu")


def _previous_outputs(folder: Path) -> dict[Path, bytes]:
    (folder / "m").mkdir()
    (folder / "m" / "000000.png").write_bytes(b"earlier mask")
    prev = {
        folder / "out.mp4": b"earlier export",
        folder / "l.jsonl": b'{"frame": 0}\n',
        folder / "l.meta.json": b"{}",
        folder / "m" / "000000.png": b"earlier mask",
    }
    for p, data in prev.items():
        p.write_bytes(data)
    return prev


@pytest.mark.parametrize(
    "fault, after, needle",
    [
        ("video-write", 5, "cannot write {out}: No space left on device"),
        ("log-write", 5, "cannot write the log {log}: No space left on device"),
        ("mask-write", 5, "cannot write mask PNGs"),
        ("video-commit", 0, "cannot finish {out}: No space left on device"),
    ],
)
def test_disk_full_clear_error_earlier_outputs_untouched(
    tmp_path, clip_faststart, toy_model, fault, after, needle
):
    prev = _previous_outputs(tmp_path)
    out, log = tmp_path / "out.mp4", tmp_path / "l.jsonl"
    r = _faulty(
        fault,
        after,
        "annotate",
        clip_faststart,
        "-o",
        out,
        "--model",
        toy_model,
        "--log",
        log,
        "--masks",
        tmp_path / "m",
        "--quiet",
    )
    assert_one_error_line(r, needle.format(out=out, log=log))
    for p, data in prev.items():
        assert p.read_bytes() == data, f"{p.name} was touched"
    assert not partials(tmp_path) and not partials(tmp_path / "m")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["l.jsonl", "l.meta.json", "m", "out.mp4"]


@pytest.mark.parametrize("after", [3, 40], ids=["before-first-packet", "mid-stream"])
def test_output_folder_removed_during_export(tmp_path, clip_faststart, toy_model, after):
    folder = tmp_path / "exports"
    folder.mkdir()
    out = folder / "out.mp4"
    r = _faulty(
        "rmtree-output",
        after,
        "annotate",
        clip_faststart,
        "-o",
        out,
        "--model",
        toy_model,
        "--log",
        folder / "l.jsonl",
        "--quiet",
    )
    line = assert_one_error_line(r, str(out))
    assert "No such file or directory" in line
    assert not folder.exists()  # nothing recreated behind the user's back


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "sighup"]
)
def test_ctrl_c_mid_export(tmp_path, toy_model, sig):
    """SIGINT (Ctrl-C), SIGTERM (a scheduler, ``timeout``) or SIGHUP (the terminal or ssh session
    closed) to a running ``annotate`` (250 generated 640x480 frames): exit 130, one line, no files,
    not even the hidden temporary ones."""
    out = tmp_path / "out.mp4"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "polypvision",
            "annotate",
            "synthetic",
            "-o",
            str(out),
            "--model",
            str(toy_model),
            "--log",
            str(tmp_path / "l.jsonl"),
            "--masks",
            str(tmp_path / "m"),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not partials(tmp_path) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # well inside the export (it takes seconds)
        assert p.poll() is None, "the export finished before it could be interrupted"
        p.send_signal(sig)
        stdout, stderr = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert lines(stderr) == ["polypvision: interrupted; no output was written"]
    assert stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_cancel_with_every_sink_keeps_earlier_outputs(tmp_path, seg):
    prev = _previous_outputs(tmp_path)
    src = SyntheticSource(frames=40, width=160, height=120)
    src.open()
    cancel = threading.Event()
    sinks = Sinks(
        video=VideoWriter(tmp_path / "out.mp4", 160, 120, 25.0),
        log=DetectionLog(tmp_path / "l.jsonl", {}),
        masks=MaskWriter(tmp_path / "m"),
    )

    def progress(p):
        if p.done >= 8:
            cancel.set()

    with pytest.raises(Cancelled):
        annotate(src, FrameProcessor(seg), sinks, batch=4, cancel=cancel, progress=progress)
    for p, data in prev.items():
        assert p.read_bytes() == data
    assert not partials(tmp_path)
    assert Cancelled.exit_code == 130


class _Boom(RuntimeError):
    pass


class _ExplodingSource(SyntheticSource):
    """A decoder that dies after ``after`` frames."""

    def __init__(self, after: int) -> None:
        super().__init__(frames=100, width=160, height=120)
        self.after = after
        self.raised = False

    def read(self):
        if self._i >= self.after:
            self.raised = True
            raise _Boom("decoder exploded")
        return super().read()


class _ExplodingLog(DetectionLog):
    def write(self, result):
        if self.lines >= 5:
            raise _Boom("log sink exploded")
        super().write(result)


class _ExplodingProcessor(FrameProcessor):
    def infer_full(self, frames):
        if frames[0].index >= 6:
            raise _Boom("model exploded")
        return super().infer_full(frames)


def _pv_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("pv-") and t.is_alive()]


@pytest.mark.parametrize("where", ["reader", "writer", "processor"])
def test_worker_exception_reaches_annotate_caller(tmp_path, seg, where):
    src = (
        _ExplodingSource(7)
        if where == "reader"
        else SyntheticSource(frames=30, width=160, height=120)
    )
    src.open()
    log_cls = _ExplodingLog if where == "writer" else DetectionLog
    proc = (_ExplodingProcessor if where == "processor" else FrameProcessor)(seg)
    sinks = Sinks(
        video=VideoWriter(tmp_path / "o.mp4", 160, 120, 25.0),
        log=log_cls(tmp_path / "l.jsonl", {}),
        masks=MaskWriter(tmp_path / "m"),
    )
    with pytest.raises(_Boom):
        annotate(src, proc, sinks, batch=2)
    assert list(tmp_path.iterdir()) == []  # every temporary output removed, nothing committed
    deadline = time.monotonic() + 5
    while _pv_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _pv_threads() == []


def test_reader_error_racing_the_end_marker_is_not_lost(tmp_path, seg, monkeypatch):
    """The reader's end marker races its error: however the reader thread is descheduled after
    putting it, the caller must see the error, not commit a short export as if the input had
    ended."""
    import polypvision.pipeline.engine as eng

    src = _ExplodingSource(6)
    src.open()
    real_put = eng.put

    def slow_put(q, item, stop):
        ok = real_put(q, item, stop)
        if item is eng._END and src.raised and threading.current_thread().name == "pv-reader":
            time.sleep(0.5)  # the reader thread is descheduled right here
        return ok

    monkeypatch.setattr(eng, "put", slow_put)
    sinks = Sinks(video=VideoWriter(tmp_path / "o.mp4", 160, 120, 25.0))
    with pytest.raises(_Boom):
        annotate(src, FrameProcessor(seg), sinks, batch=2)
    assert list(tmp_path.iterdir()) == []


def _wait(cond, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


class _FailingLive(LiveSyntheticSource):
    def read(self, timeout_s=None):
        f = super().read(timeout_s)
        if f is not None and f.index >= 10:
            raise _Boom("capture driver exploded")
        return f


@pytest.mark.parametrize("where", ["reader", "processor"])
def test_worker_exception_reaches_live_on_error(seg, where):
    src = (
        _FailingLive(fps=200, width=96, height=72)
        if where == "reader"
        else LiveSyntheticSource(fps=200, width=96, height=72)
    )
    src.open()
    errors: list[BaseException] = []
    proc = _ExplodingProcessor(seg) if where == "processor" else FrameProcessor(seg)
    runner = LiveRunner(src, proc, on_error=errors.append)
    runner.start()
    try:
        assert _wait(lambda: bool(errors))
        assert _wait(lambda: not runner.running, 5)
    finally:
        runner.stop()
    assert len(errors) == 1 and isinstance(errors[0], _Boom)
    assert runner.error is errors[0]


def test_live_signal_lost_and_back_through_the_runner(seg):
    """An 'unplugged' capture card: status goes to signal lost, the grabber retries with backoff,
    frames resume and the runner keeps producing results without an error."""
    src = LiveSyntheticSource(fps=100, width=96, height=72, outage=(30, 45))
    src.open()
    results: list = []
    errors: list = []
    runner = LiveRunner(src, FrameProcessor(seg), on_result=results.append, on_error=errors.append)
    statuses: list[str] = []
    runner.start()
    try:

        def lost_then_back():
            s = runner.stats().status
            if not statuses or statuses[-1] != s:
                statuses.append(s)
            return "signal lost" in statuses and s == "ok" and src.reconnects >= 1

        assert _wait(lost_then_back, 20), statuses
        n_back = len(results)
        assert _wait(lambda: len(results) >= n_back + 10, 10)
    finally:
        runner.stop()
    assert errors == [] and runner.error is None
    assert statuses[0] == "ok" and "signal lost" in statuses and statuses[-1] == "ok"
    idx = [r.index for r in results]
    assert idx == sorted(idx) and len(set(idx)) == len(idx)
    assert not runner.running


class _FullDiskWriter(VideoWriter):
    def write_image(self, bgr, pts=None):
        if self.frames >= 3:
            raise OSError(28, "No space left on device")
        super().write_image(bgr, pts)


def _shown(proc, frame, fps: float = 25.0):
    """The picture the live view would show for ``frame``, captured at frame index / fps."""
    from dataclasses import replace

    from polypvision.pipeline.compose import LiveFrame

    frame = replace(frame, t_capture=100.0 + frame.index / fps)
    result = proc.process([frame], render=False)[0]
    return LiveFrame(frame, result, proc.settings, frame.image, frame.t_capture)


def test_recorder_with_failing_writer_keeps_what_was_recorded(tmp_path, seg, monkeypatch):
    """Writes that start failing after 3 frames: stop() says why and where, and the 3 frames
    already encoded are kept (a procedure cannot be recorded again); no temporary file stays."""
    import polypvision.pipeline.recorder as rec_mod

    monkeypatch.setattr(rec_mod, "VideoWriter", _FullDiskWriter)
    src = SyntheticSource(frames=12, width=96, height=72)
    src.open()
    proc = FrameProcessor(seg)
    rec = Recorder(tmp_path / "rec.mp4", 96, 72, 25.0)
    for f in src:
        rec.submit(_shown(proc, f))
    with pytest.raises(OutputError, match="No space left on device") as err:
        rec.stop()
    assert err.value.path == tmp_path / "rec.mp4" and "saved in" in str(err.value)
    assert len(decode_all(tmp_path / "rec.mp4")) == 3
    assert partials(tmp_path) == []
    assert "pv-recorder" not in _pv_threads()


def test_recorder_commits_every_submitted_frame(tmp_path, seg):
    src = SyntheticSource(frames=20, width=160, height=120, stamp=True)
    src.open()
    proc = FrameProcessor(seg)
    rec = Recorder(tmp_path / "rec.mp4", 160, 120, 25.0)
    for f in src:
        rec.submit(_shown(proc, f))
    path = rec.stop()
    from polypvision.sources.synthetic import read_stamp

    assert rec.dropped == 0 and [read_stamp(f) for f in decode_all(path)] == list(range(20))


def test_unplugged_for_good_retries_with_backoff_and_stops_cleanly(seg):
    """A device that never comes back: the grabber keeps retrying, with pauses that double up to
    a ceiling (not a busy loop; the pauses are recorded, not slept through), the runner stays up
    without an error, and stop() still ends every thread."""
    from polypvision.sources.live import BACKOFF_MAX_S, BACKOFF_START_S

    src = LiveSyntheticSource(fps=1000, width=96, height=72, outage=(20, 10**9))
    waits: list[float] = []
    enough = threading.Event()

    def record(seconds: float) -> bool:
        waits.append(seconds)
        if len(waits) >= 8:
            enough.set()
            return src._stop.wait(60)  # parked until stop(), as a long backoff would be
        return False

    src.wait_backoff = record
    src.open()
    errors: list = []
    runner = LiveRunner(src, FrameProcessor(seg), on_error=errors.append)
    runner.start()
    try:
        assert enough.wait(20)
        assert runner.stats().status in ("signal lost", "reconnecting")
        assert runner.running and runner.error is None and errors == []
    finally:
        runner.stop()
    want = [min(BACKOFF_START_S * 2**i, BACKOFF_MAX_S) for i in range(8)]
    assert waits == want and src.reconnects == 7
    assert _wait(
        lambda: (
            not [t for t in threading.enumerate() if t.name.startswith("pv-grab") and t.is_alive()]
        ),
        5,
    )
    assert not runner.running


class _SwitchingCapture:
    """A capture card that renegotiates its resolution every 15 frames
    (quacks like VideoCapture)."""

    def __init__(self) -> None:
        from polypvision.sources.synthetic import SyntheticClip

        self.clips = [SyntheticClip(160, 120), SyntheticClip(224, 168), SyntheticClip(96, 72)]
        self.i = 0
        self.open = True

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's spelling
        return self.open

    def read(self):
        time.sleep(0.004)
        if not self.open:
            return False, None
        clip = self.clips[(self.i // 15) % 3]
        self.i += 1
        return True, clip.frame(self.i)

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        self.open = False


class _SwitchingLive(LiveSyntheticSource):
    def _make_capture(self):
        return _SwitchingCapture()


def test_live_resolution_change_keeps_running_and_recording(tmp_path, seg):
    src = _SwitchingLive()
    src.open()
    rec = Recorder(tmp_path / "rec.mp4", 160, 120, 25.0)
    sizes: set = set()
    errors: list = []
    runner = LiveRunner(
        src,
        FrameProcessor(seg),
        on_result=lambda r: sizes.add(r.frame.image.shape),
        on_error=errors.append,
    )
    runner.recorder = rec
    runner.start()
    try:
        assert _wait(lambda: len(sizes) == 3 or bool(errors), 20), sizes
    finally:
        runner.stop()
    path = rec.stop()
    assert errors == [] and sizes == {(120, 160, 3), (168, 224, 3), (72, 96, 3)}
    frames = decode_all(path)
    assert len(frames) == rec.frames > 0 and frames[0].shape == (120, 160, 3)


class _SlowVideo(VideoWriter):
    """A slow disk (or a 4K encode): 0.2 s a frame. Records any write after abort()."""

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.aborted = False
        self.late_writes = 0

    def write(self, bgr):
        if self.aborted:
            self.late_writes += 1
        time.sleep(0.2)
        super().write(bgr)

    def abort(self):
        self.aborted = True
        super().abort()


def test_cancel_with_a_slow_writer_aborts_only_after_the_writer_stopped(tmp_path, seg):
    """Found by this suite: after a cancel (or Ctrl-C) the writer kept draining up to 16 queued
    frames while the sinks were aborted under it (the encoder closed mid-encode). The writer must
    stop at the frame it is on, and the abort come after it."""
    src = SyntheticSource(frames=60, width=160, height=120)
    src.open()
    video = _SlowVideo(tmp_path / "o.mp4", 160, 120, 25.0)
    cancel = threading.Event()

    def progress(p):
        if p.done >= 24:  # by now the results queue is full of frames waiting for the slow writer
            cancel.set()

    with pytest.raises(Cancelled):
        annotate(
            src, FrameProcessor(seg), Sinks(video=video), batch=4, cancel=cancel, progress=progress
        )
    assert video.aborted and video.late_writes == 0
    assert "pv-writer" not in _pv_threads()
    assert list(tmp_path.iterdir()) == []


def test_video_writer_abort_never_closes_the_encoder_under_a_write(tmp_path):
    """abort() from the stopping thread while the writer thread is inside a (slow) write: the
    abort waits for that frame, later writes get a clear OutputError, and the process lives."""
    import numpy as np

    class SlowInside(VideoWriter):
        slow = False

        def _write(self, bgr):
            if self.slow:
                time.sleep(0.3)  # inside the encoder call, as a slow disk or a 4K frame would be
            super()._write(bgr)

    w = SlowInside(tmp_path / "o.mp4", 64, 48, 25.0)
    frame = np.zeros((48, 64, 3), np.uint8)
    for _ in range(30):  # the encoder is running (writing to a closed one kills the process)
        w.write_image(frame)
    w.slow = True
    t = threading.Thread(target=w.write_image, args=(frame,), name="pv-test-writer")
    t.start()
    time.sleep(0.05)
    w.abort()
    t.join(5)
    assert not t.is_alive() and w.frames == 31  # the frame in flight finished before the close
    with pytest.raises(OutputError, match="already stopped"):
        w.write_image(frame)
    assert list(tmp_path.iterdir()) == []
