"""The app's core without Qt: the session controller driven like the window drives it, the player's
outputs, the export with its report, the timeline's polyp events, and the choices behind the
dialogs."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import polypvision
from polypvision.events import EventSettings, find_events
from polypvision.pipeline.track import POLYP, UNKNOWN, DetectionTrack
from polypvision.types import Detection, Frame, FrameResult
from polypvision.viewer.controller import Phase, SessionController, SessionEvents
from polypvision.viewer.source_choices import (
    SIMULATED,
    DeviceRequest,
    granted_text,
    parse_v4l2_formats,
    push_recent,
)

PACKAGE = Path(polypvision.__file__).resolve().parent


def until(cond, timeout_s: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        time.sleep(0.02)


class Recorder(SessionEvents):
    """The window's side, as a list of what the controller said."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.errors: list[str] = []
        self.placeholders: list[str] = []
        self.opened: list[str] = []
        self.players: list = []
        self.signals: list[bool] = []
        self.ends = threading.Event()

    def message(self, text, timeout_ms=0):
        self.messages.append(text)

    def error(self, text):
        self.errors.append(text)

    def placeholder(self, text, *, clear=False):
        self.placeholders.append(text)

    def source_opened(self, spec, source):
        self.opened.append(spec)

    def player_ready(self, player):
        self.players.append(player)

    def signal(self, lost, description):
        self.signals.append(lost)

    def player_ended(self):
        self.ends.set()


@pytest.fixture
def session(tmp_path):
    made = []

    def make(**kw) -> tuple[SessionController, Recorder]:
        ev = Recorder()
        out = tmp_path / "out"
        out.mkdir(exist_ok=True)
        s = SessionController(ev, provider="cpu", output_dir=lambda: out, **kw)
        made.append(s)
        return s, ev

    yield make
    for s in made:
        s.close()


# -- layering --------------------------------------------------------------------------------------
def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            names += [mod] + [f"{mod}.{a.name}" for a in node.names]
    return names


def test_the_gui_never_imports_the_cli():
    """The window is a view over the core: it takes models from the registry, never from the CLI."""
    offenders = [
        f"{p.name}: {n}"
        for p in (PACKAGE / "gui").glob("*.py")
        for n in _imports(p)
        if n == "polypvision.cli" or n.startswith("polypvision.cli.")
    ]
    assert offenders == []


def test_the_gui_imports_nothing_from_the_cli_when_it_runs():
    pytest.importorskip("PySide6")
    script = textwrap.dedent("""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == 'polypvision.cli':
                    raise ImportError('blocked: ' + name)
        sys.meta_path.insert(0, Block())
        import polypvision.gui.app, polypvision.gui.main_window
        print('ok')
    """)
    r = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]


def test_the_viewer_is_qt_free():
    offenders = [
        f"{p.name}: {n}"
        for p in (PACKAGE / "viewer").glob("*.py")
        for n in _imports(p)
        if n.split(".")[0] in ("PySide6", "shiboken6") or n.startswith("polypvision.gui")
    ]
    assert offenders == []


# -- the session state machine ---------------------------------------------------------------------
def test_a_source_waits_for_the_model_then_plays_pauses_and_ends(session, toy_model, clip_small):
    s, ev = session()
    assert s.phase is Phase.IDLE and s.status().position == -1
    s.open(str(clip_small))  # no model yet: the source waits
    assert s.phase is Phase.WAITING_FOR_MODEL and ev.opened == [str(clip_small)]
    assert ev.placeholders[-1] == "Loading the model\u2026" and s.player is None
    s.load_model(toy_model)
    assert s.phase is Phase.PLAYING and ev.players == [s.player] and s.pending is None
    assert any(m.startswith("Model toy-redness on") for m in ev.messages)
    st = s.status()
    assert st.spec == str(clip_small) and st.seekable and not st.live and st.frame_count == 12
    s.toggle_play()
    assert s.phase is Phase.PAUSED
    s.seek(5)
    until(lambda: s.player.runner.position == 5, what="the seek")
    s.step(1)
    until(lambda: s.player.runner.position == 6, what="the step")
    s.seek(10)
    until(lambda: s.player.runner.position == 10, what="the seek near the end")
    s.toggle_play()
    until(lambda: s.player.runner.ended, what="the end")
    assert s.phase is Phase.ENDED
    s.ended()
    assert "End of clip" in ev.messages[-1]
    s.toggle_play()  # play at the end starts over
    until(lambda: s.phase is Phase.PLAYING and s.player.runner.position < 11, what="playing again")


def test_the_newest_request_wins_and_stale_sources_are_closed(
    session, toy_model, clip_small, clip_640
):
    jobs = []

    def deferred(name, fn, done, failed):  # the window's worker threads, finishing in any order
        jobs.append((name, fn, done, failed))

    s, ev = session(run=deferred)
    s.load_model(toy_model)
    s.open(str(clip_640))
    s.open(str(clip_small))
    assert s.status().opening == str(clip_small) and s.status().loading_model
    assert s.phase is Phase.OPENING
    model, first, second = jobs
    second[2](second[1]())  # the newer source opens first
    stale, closed = first[1](), []
    real_close = stale.close
    stale.close = lambda: (closed.append(True), real_close())
    first[2](stale)  # the older one answers late: dropped and closed
    assert (
        s.pending is not None and s.pending[0] == str(clip_small) and ev.opened == [str(clip_small)]
    )
    assert closed == [True]
    model[2](model[1]())
    assert (
        s.player is not None and s.player.spec == str(clip_small) and not s.status().loading_model
    )


def test_a_model_that_fails_keeps_the_running_one_or_says_why(
    session, toy_model, clip_small, tmp_path
):
    s, ev = session()
    s.load_model(tmp_path / "missing.onnx")
    assert s.segmenter is None and "model file not found" in ev.errors[-1]
    assert ev.placeholders[-1].startswith("No model loaded")
    s.open(str(clip_small))
    assert s.phase is Phase.WAITING_FOR_MODEL and "model file not found" in ev.placeholders[-1]
    s.load_model(toy_model)
    running = s.segmenter
    assert s.phase is Phase.PLAYING
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    s.load_model(bad)
    assert (
        s.segmenter is running
        and s.player.processor.segmenter is running
        and s.player.runner.running
    )
    assert "not a loadable ONNX model" in ev.errors[-1]


def test_a_source_that_fails_to_open_says_why(session, tmp_path):
    s, ev = session()
    s.open(str(tmp_path / "nowhere.mp4"))
    assert s.phase is Phase.IDLE and "not found" in ev.errors[-1]
    assert ev.placeholders[-1].startswith("Could not open")


def test_record_snapshot_and_the_outputs_in_progress(session, toy_model, clip_small, tmp_path):
    s, ev = session(loop=True)
    assert s.toggle_record() is None and "open a source first" in ev.errors[-1]
    assert s.snapshot() is None
    s.load_model(toy_model)
    s.open(str(clip_small))
    until(
        lambda: s.player.runner.latest_shown() is not None or s.player.runner.position >= 0,
        what="a frame",
    )
    path = s.toggle_record()
    assert path is not None and s.status().recording and ev.messages[-1] == f"Recording to {path}"
    until(lambda: s.player.recorder.frames >= 5, what="recorded frames")
    saved = s.toggle_record()
    assert saved == path and path.is_file() and not s.status().recording
    assert ev.messages[-1] == f"Recording saved: {path}"
    until(lambda: s.player.runner.latest_shown() is not None, what="a shown frame")
    snap = s.snapshot()
    assert snap is not None and snap.suffix == ".png" and snap.is_file()
    assert sorted(p.name for p in snap.parent.iterdir() if p.name.startswith(".")) == []


def test_a_failing_recording_is_stopped_by_the_poll(session, toy_model, clip_small):
    s, ev = session(loop=True)
    s.load_model(toy_model)
    s.open(str(clip_small))
    s.toggle_record()
    rec = s.player.recorder

    def full_disk(img, pts=None):
        raise OSError(28, "No space left on device")

    rec.sink.video.write_image = full_disk
    until(lambda: rec.error is not None, what="the write error")
    s.poll()
    assert not s.status().recording and "No space left on device" in ev.errors[-1]


def test_closing_finishes_the_recording_and_stops_every_thread(
    session, toy_model, clip_small, clip_640
):
    s, ev = session(loop=True)
    s.load_model(toy_model)
    s.open(str(clip_small))
    s.toggle_record()
    until(lambda: s.player.recorder.frames >= 3, what="recorded frames")
    threads = {t for t in threading.enumerate() if t.name.startswith("pv-")}
    saved = s.close()
    assert saved is not None and saved.is_file() and s.phase is Phase.CLOSED
    assert not any(t.is_alive() for t in threads)
    s.open(str(clip_640))  # a source that answers after the close is closed, never played
    assert s.player is None


def test_export_with_the_report_and_a_scan_that_counts_polyp_events(
    session, toy_model, clip_small, tmp_path
):
    from polypvision.events import read_log
    from polypvision.viewer.export import plan_export

    s, ev = session()
    s.load_model(toy_model)
    s.open(str(clip_small))
    spec, default = s.export_source()
    assert spec == str(clip_small) and default.name == "small-annotated.mp4"
    plan = plan_export(spec, tmp_path / "exp", report=True)  # the report comes with its log
    assert (
        plan.video.name == "exp.mp4"
        and plan.log.name == "exp.jsonl"
        and plan.report.name == "exp.report.html"
    )
    done = threading.Event()
    job = s.start_export(spec, plan, on_exit=done.set)
    assert s.status().exporting
    assert done.wait(30) and job.error is None and not s.status().exporting
    assert job.report.frames == 12 and len(read_log(plan.log)) == 12
    html = plan.report.read_text(encoding="utf-8")
    assert "polyp events" in html and "toy-redness" in html

    finished = []
    assert s.toggle_scan(lambda p: None, finished.append) is True
    until(lambda: finished, what="the scan")
    s.scan_finished(finished[0])
    track = s.player.track
    assert not (track.state == UNKNOWN).any()
    n = len(track.events())
    assert ev.messages[-1].startswith(f"Scan complete: {n} polyp event")


def test_export_and_scan_are_refused_for_live_sources(session, toy_model):
    from polypvision.sources.synthetic import LiveSyntheticSource

    s, ev = session()
    s.load_model(toy_model)
    s.open("device:sim", source=LiveSyntheticSource(fps=30, width=160, height=120))
    assert s.status().live and s.export_source() is None and "live sources" in ev.errors[-1]
    assert (
        s.toggle_scan(lambda p: None, lambda e: None) is None and "can be scanned" in ev.errors[-1]
    )


def test_a_live_signal_lost_and_back(session, toy_model):
    from polypvision.sources.synthetic import LiveSyntheticSource

    s, ev = session()
    s.load_model(toy_model)
    s.open("device:sim", source=LiveSyntheticSource(fps=30, width=160, height=120, outage=(5, 40)))

    def polled(phase):
        s.poll()
        return s.phase is phase

    until(lambda: polled(Phase.SIGNAL_LOST), 10, "signal lost")
    until(lambda: polled(Phase.PLAYING), 20, "signal back")
    assert ev.signals[:2] == [True, False]


def test_overlay_loop_and_sync_settings_reach_the_player(session, toy_model, clip_small):
    from dataclasses import replace

    s, ev = session()
    s.load_model(toy_model)
    s.open(str(clip_small))
    s.apply_overlay(replace(s.overlay, enabled=False, threshold=0.9))
    assert not s.player.processor.style.enabled and s.player.processor.threshold == 0.9
    s.set_loop(True)
    s.set_synchronous(True)
    assert s.player.runner.loop and s.player.runner.mode == "sync"


# -- the timeline's polyp events -------------------------------------------------------------------
def _result(
    i: int, present: bool, fps: float = 10.0, area: float = 0.05, peak: float = 0.9
) -> FrameResult:
    frame = Frame(i, np.zeros((4, 4, 3), np.uint8), 0.0, i / fps)
    return FrameResult(
        frame,
        np.zeros((4, 4), np.uint8),
        Detection(present, area if present else 0.0, (), peak if present else 0.1),
    )


def test_the_timeline_counts_events_as_the_report_does():
    flags = "..#####..####......#......######"
    track = DetectionTrack(len(flags), fps=10.0, events=EventSettings(0.3, 0.5))
    for i, c in enumerate(flags):
        track.write(_result(i, c == "#", area=0.01 * (i % 7)))
    records = [
        {
            "t": i / 10.0,
            "polyp": c == "#",
            "area": 0.01 * (i % 7) if c == "#" else 0.0,
            "peak": 0.9 if c == "#" else 0.1,
        }
        for i, c in enumerate(flags)
    ]
    expected = find_events(records, EventSettings(0.3, 0.5))
    got = track.events()
    assert (
        [(e.start_frame, e.end_frame, e.largest_frame) for e in got]
        == [(e.start_frame, e.end_frame, e.largest_frame) for e in expected]
        == [(2, 12, 6), (26, 31, 27)]
    )
    assert track.event_at(9).number == 1 and track.event_at(20) is None
    assert track.events() is got  # recounted only when the track changes


def test_frames_not_analysed_yet_count_as_without_a_polyp():
    track = DetectionTrack(40, fps=10.0)
    for i in range(0, 15):
        track.write(_result(i, True))
    for i in range(25, 40):
        track.write(_result(i, True))
    assert (track.state[15:25] == UNKNOWN).all() and (track.state[:15] == POLYP).all()
    assert [(e.start_frame, e.end_frame) for e in track.events()] == [(0, 14), (25, 39)]


# -- the choices behind the dialogs ----------------------------------------------------------------
V4L2 = """ioctl: VIDIOC_ENUM_FMT
\tType: Video Capture

\t[0]: 'MJPG' (Motion-JPEG, compressed)
\t\tSize: Discrete 1920x1080
\t\t\tInterval: Discrete 0.033s (30.000 fps)
\t\t\tInterval: Discrete 0.040s (25.000 fps)
\t[1]: 'YUYV' (YUYV 4:2:2)
\t\tSize: Discrete 640x480
\t\t\tInterval: Discrete 0.017s (60.000 fps)
"""


def test_v4l2_formats_and_granted_text():
    assert parse_v4l2_formats(V4L2) == [
        ("MJPG", 1920, 1080, 30.0),
        ("MJPG", 1920, 1080, 25.0),
        ("YUYV", 640, 480, 60.0),
    ]
    extra = {
        "granted_width": 1280,
        "granted_height": 720,
        "granted_fps": 30.0,
        "granted_fourcc": "MJPG",
    }
    assert granted_text(extra) == "1280x720 @ 30 fps MJPG"
    assert granted_text({}) == ""


def test_device_choices_reach_the_device_independently():
    """A default rate with a size used to force 25 fps; 60 fps with the default size lost the 60."""
    from polypvision.viewer.opening import SIMULATED_CARD_FPS, build_source

    rate_only = build_source("0", **DeviceRequest("0", fps=60.0).kwargs())
    size_only = build_source("0", **DeviceRequest("0", width=1280, height=720).kwargs())
    assert rate_only.requested["fps"] == 60.0 and rate_only.requested["width"] is None
    assert size_only.requested["fps"] is None and size_only.requested["width"] == 1280
    assert build_source(SIMULATED).fps == SIMULATED_CARD_FPS


def test_recent_sources_order_and_limit():
    r: list[str] = []
    for i in range(15):
        r = push_recent(r, f"/v/{i}.mp4")
    r = push_recent(r, "/v/12.mp4")
    assert r[0] == "/v/12.mp4" and len(r) == 10 and len(set(r)) == 10
    assert push_recent(r, "demo") == r


def test_the_apps_defaults_are_the_cores(tmp_path):
    """The app starts from the core's own defaults: style, threshold,
    smoothing and the model's gate."""
    from toy_model import build_toy_model, contract_doc

    from polypvision.model.session import Segmenter
    from polypvision.overlay import OverlayStyle
    from polypvision.pipeline.processor import FrameProcessor, StreamSettings
    from polypvision.viewer.overlay_settings import OverlaySettings

    doc = contract_doc(64)
    doc["output"] = {**doc["output"], "min_area": 0.01, "min_peak": 0.7}
    seg = Segmenter(build_toy_model(tmp_path / "gated.onnx", 64, contract=doc), "cpu")
    assert OverlaySettings().style() == OverlayStyle()
    assert OverlaySettings().stream_settings(seg) == StreamSettings()
    app = FrameProcessor(seg, settings=OverlaySettings().stream_settings(seg)).smoother
    core = FrameProcessor(seg).smoother
    assert (
        (app.config, app.on, app.off, app.min_area, app.min_peak)
        == (core.config, core.on, core.off, core.min_area, core.min_peak)
        == (core.config, 0.5, 0.3, 0.01, 0.7)
    )


def test_cuda_fallback_is_a_visible_warning():
    from polypvision.model.session import ProviderReport
    from polypvision.viewer.labels import provider_text

    text, warn = provider_text("auto", ProviderReport("CPU", "no NVIDIA driver found"))
    assert warn and "CPU" in text and "no NVIDIA driver found" in text
    assert provider_text("cpu", ProviderReport("CPU", "CPU requested")) == ("Running on CPU", False)
    assert provider_text("auto", ProviderReport("CUDA", "ok"))[1] is False


def test_the_alert_fires_once_per_appearance():
    from polypvision.viewer.alert import AppearanceAlert

    a = AppearanceAlert(quiet_s=1.0)
    assert a.update(True, 10.0) and not a.update(True, 10.1)  # the same polyp, still there
    assert not a.update(False, 10.2) and not a.update(True, 10.5)  # a flicker is not a new polyp
    assert a.update(True, 12.0)  # gone for more than the quiet spell: new


def _shown_frame(runner, index: int):
    """Take the pictures handed to the display, as the window does, until frame ``index``."""
    got: list = []

    def arrived() -> bool:
        item = runner.take_display()
        if item is not None:
            got.append(item)
        return bool(got) and got[-1].frame.index == index

    until(arrived, what=f"frame {index} on the display")
    return got[-1].frame


def test_a_seek_in_a_variable_frame_rate_clip_shows_and_marks_the_frame_named(
    session, toy_model, tmp_path
):
    """Defect 6 (issue 23): the picture, the label and the timeline mark after a seek are the
    frame the whole-clip pass calls by that index."""
    from vfr_clip import VFR_PTS_MS, write_vfr_clip

    from polypvision.sources.synthetic import read_stamp

    clip = write_vfr_clip(tmp_path / "vfr.mp4", VFR_PTS_MS)
    s, _ = session(synchronous=True)
    s.load_model(toy_model)
    s.open(str(clip))
    s.toggle_play()
    r = s.player.runner
    for k in (25, 7, 33):
        s.seek(k)
        frame = _shown_frame(r, k)
        assert r.position == k and read_stamp(frame.image) == k
        assert frame.pts_s == pytest.approx(VFR_PTS_MS[k] / 1000)
        assert s.player.track.t[k] == pytest.approx(VFR_PTS_MS[k] / 1000)
        assert r.position_s == pytest.approx(VFR_PTS_MS[k] / 1000)  # the transport's clock
