"""Record, snapshot, export (and its cancel), closing, settings, and model errors."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import pytest


def decodable_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


def test_record_writes_a_decodable_mp4(make_window, frames_clip, app_settings, qtbot):
    win = make_window(frames_clip)
    win.player.runner.loop = True
    win.toggle_record()
    assert win.player.recording
    qtbot.waitUntil(lambda: win.player.recorder.frames >= 12, timeout=10000)
    qtbot.waitUntil(lambda: win.record_bar.elapsed.text().startswith("REC 0:00:0"), timeout=2000)
    win.toggle_record()
    assert not win.player.recording
    msg = win.statusBar().currentMessage()
    assert "Recording saved" in msg
    path = Path(msg.split("Recording saved: ", 1)[1])
    assert path.suffix == ".mp4" and decodable_frames(path) >= 12
    assert leftovers(path.parent) == []


def test_snapshot_is_the_annotated_frame(make_window, frames_clip, qtbot):
    """Paused, the picture on screen is its frame with its own mask: the snapshot is that frame
    at full size, drawn exactly as an export draws it."""
    win = make_window(frames_clip)
    win.player.runner.pause()
    win.seek(10)  # a settled frame: nothing is in flight after the seek has been shown
    runner = win.player.runner
    qtbot.waitUntil(
        lambda: (
            getattr(runner.latest_shown(), "overlay", None) is not None
            and runner.latest_shown().frame.index == 10
            and runner.latest_shown().overlay.index == 10
        ),
        timeout=5000,
    )
    path = win.snapshot()
    img = cv2.imread(str(path))
    assert img is not None and img.shape == (240, 320, 3)
    assert (img == win.player.processor.render(runner.latest_shown().overlay)).all()


def test_export_runs_and_cancel_leaves_no_file(make_window, frames_clip, tmp_path, qtbot):
    win = make_window(frames_clip)
    dlg = win.export_clip()
    out = tmp_path / "exported.mp4"
    dlg.path_edit.setText(str(out))
    dlg.log_box.setChecked(True)
    dlg.start()
    qtbot.waitUntil(lambda: not dlg.running and dlg.result_text != "", timeout=20000)
    assert "Exported 60 frames" in dlg.result_text, dlg.result_text
    assert decodable_frames(out) == 60 and out.with_suffix(".jsonl").exists()

    dlg2 = win.export_clip()
    out2 = tmp_path / "cancelled.mp4"
    dlg2.path_edit.setText(str(out2))
    dlg2.start()
    dlg2.cancel()
    qtbot.waitUntil(lambda: not dlg2.running and dlg2.result_text != "", timeout=10000)
    assert "cancelled" in dlg2.result_text
    assert not out2.exists() and leftovers(tmp_path) == []
    qtbot.waitUntil(lambda: "cancelled" in win.statusBar().currentMessage(), timeout=2000)


def test_export_can_write_the_procedures_report(make_window, frames_clip, tmp_path, qtbot):
    """File > Export also writes the per-procedure HTML report (and the log it is made from)."""
    win = make_window(frames_clip)
    dlg = win.export_clip()
    out = tmp_path / "with-report.mp4"
    dlg.path_edit.setText(str(out))
    dlg.report_box.setChecked(True)
    assert dlg.log_box.isChecked()  # the report is made from the log
    dlg.start()
    qtbot.waitUntil(lambda: not dlg.running and dlg.result_text != "", timeout=20000)
    report = tmp_path / "with-report.report.html"
    assert f"report: {report}" in dlg.result_text, dlg.result_text
    html = report.read_text(encoding="utf-8")
    assert "with-report.mp4" in html and "Polyp events" in html
    assert out.with_suffix(".jsonl").is_file() and leftovers(tmp_path) == []


def test_export_refuses_a_bad_path_and_live_sources(make_window, frames_clip, tmp_path, qtbot):
    win = make_window(frames_clip)
    dlg = win.export_clip()
    dlg.path_edit.setText(str(tmp_path / "no" / "such" / "dir" / "x.mp4"))
    dlg.start()
    assert not dlg.running and "does not exist" in dlg.status.text()
    dlg.reject()
    win.open_source("synthetic:live")
    qtbot.waitUntil(lambda: win.player is not None and win.player.info.live, timeout=10000)
    assert win.export_clip() is None
    assert "live sources" in win.statusBar().currentMessage()


def test_close_is_quick_and_finishes_the_recording(make_window, frames_clip, app_settings, qtbot):
    win = make_window(frames_clip)
    win.player.runner.loop = True
    win.toggle_record()
    rec = win.player.recorder
    qtbot.waitUntil(lambda: rec.frames >= 5, timeout=10000)
    threads_before = {t for t in threading.enumerate() if t.name.startswith("pv-")}
    assert threads_before
    t0 = time.perf_counter()
    win.close()
    assert time.perf_counter() - t0 < 2.0
    assert not any(t.is_alive() for t in threads_before)
    saved = rec.path
    assert saved.exists() and decodable_frames(saved) >= 5


def test_close_during_live_and_signal_loss_is_quick(make_window, qtbot):
    from polypvision.sources.synthetic import LiveSyntheticSource

    win = make_window()
    win.open_source(
        "device:sim", source=LiveSyntheticSource(fps=30, width=160, height=120, outage=(5, 10_000))
    )
    qtbot.waitUntil(lambda: "SIGNAL LOST" in win.view.banner, timeout=10000)
    t0 = time.perf_counter()
    win.close()
    assert time.perf_counter() - t0 < 2.0


def test_settings_persist_between_runs(make_window, frames_clip, app_settings, qtbot):
    from polypvision.gui.main_window import MainWindow

    win = make_window(frames_clip)
    win.overlay_panel.box_box.setChecked(True)
    win.overlay_panel.opacity.setValue(70)
    win.overlay_panel.alert_box.setChecked(True)
    win.close()
    again = MainWindow(app_settings, provider="cpu")
    qtbot.addWidget(again)
    s = again.overlay_settings
    assert s.box and s.opacity == pytest.approx(0.7)
    assert again.overlay_panel.box_box.isChecked() and again.overlay_panel.alert_box.isChecked()
    assert app_settings.recent[0] == str(frames_clip)
    again.close()


def test_bad_model_keeps_the_running_one(make_window, frames_clip, tmp_path, qtbot):
    win = make_window(frames_clip)
    before = win.segmenter
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    win.load_model(bad, "cpu")
    qtbot.waitUntil(
        lambda: "not a loadable ONNX model" in win.statusBar().currentMessage(), timeout=5000
    )
    assert win.segmenter is before and win.player.runner.running


def test_model_swap_while_playing(make_window, frames_clip, tmp_path, qtbot):
    from toy_model import build_toy_model

    win = make_window(frames_clip)
    other = build_toy_model(tmp_path / "other.onnx", size=32)
    win.load_model(other, "cpu")
    qtbot.waitUntil(lambda: win.player.processor.segmenter.path == other, timeout=5000)
    assert "32x32" in win.model_panel.info_label.text()


def test_worker_errors_reach_the_status_bar(make_window, frames_clip, qtbot):
    win = make_window(frames_clip)

    def broken(frames):
        raise RuntimeError("inference exploded")

    win.player.processor.infer_full = broken
    qtbot.waitUntil(lambda: "inference exploded" in win.statusBar().currentMessage(), timeout=5000)
    assert win.isVisible()
    win.open_source(str(frames_clip))  # and the app recovers with a fresh pipeline
    qtbot.waitUntil(lambda: win.player is not None and win.player.runner.running, timeout=10000)


def test_a_failing_recording_is_reported(make_window, frames_clip, qtbot):
    win = make_window(frames_clip)
    win.player.runner.loop = True
    win.toggle_record()
    rec = win.player.recorder

    def full_disk(img, pts=None):
        raise OSError(28, "No space left on device")

    rec.sink.video.write_image = full_disk
    # The recording stops by itself (no REC timer counting over a dead file) and says why.
    qtbot.waitUntil(lambda: not win.player.recording, timeout=5000)
    qtbot.waitUntil(lambda: "nothing was saved" in win.statusBar().currentMessage(), timeout=2000)
    assert "No space left on device" in win.statusBar().currentMessage()
    qtbot.waitUntil(
        lambda: not win.record_bar.elapsed.isVisible(), timeout=2000
    )  # REC stopped counting
    assert not rec.path.exists() and leftovers(rec.path.parent) == []


def test_close_during_an_export_cancels_it_quickly(make_window, tmp_path, qtbot):
    win = make_window("synthetic")  # 250 frames at 640x480: an export that takes a few seconds
    dlg = win.export_clip()
    out = tmp_path / "unfinished.mp4"
    dlg.path_edit.setText(str(out))
    dlg.start()
    qtbot.waitUntil(lambda: dlg.running, timeout=2000)
    t0 = time.perf_counter()
    win.close()
    assert time.perf_counter() - t0 < 2.0
    qtbot.waitUntil(lambda: not dlg.running, timeout=5000)
    assert not out.exists() and leftovers(tmp_path) == []


def test_export_of_a_vanished_file_reports_and_ends(make_window, tmp_path, qtbot):
    from polypvision.demo import write_synthetic_clip

    clip = write_synthetic_clip(tmp_path / "gone.mp4", 10, 160, 120, 25.0)
    win = make_window(clip)
    dlg = win.export_clip()
    dlg.path_edit.setText(str(tmp_path / "x.mp4"))
    clip.unlink()  # deleted (or the drive unplugged) after it was opened
    dlg.start()
    qtbot.waitUntil(lambda: not dlg.running and dlg.result_text != "", timeout=5000)
    assert "Export failed" in dlg.result_text and "not found" in dlg.result_text
    assert dlg.start_btn.isEnabled()
