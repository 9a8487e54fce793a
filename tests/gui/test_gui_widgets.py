"""Dialogs and panels on their own, and window states (no model, fullscreen, recent sources)."""

from __future__ import annotations

import numpy as np
import pytest

from polypvision.gui.source_dialogs import DeviceDialog, StreamDialog
from polypvision.gui.video_view import bgr_to_qimage, fit_rect
from polypvision.viewer.source_choices import SIMULATED


def test_device_dialog_request(qtbot):
    dlg = DeviceDialog({SIMULATED: "640x480 @ 30 fps"})
    qtbot.addWidget(dlg)
    dlg.devices.setCurrentIndex(dlg.devices.findData(SIMULATED))
    assert dlg.granted.text() == "640x480 @ 30 fps"
    assert dlg.request().spec == SIMULATED and dlg.request().width is None
    dlg.resolution.setCurrentText("1280x720")
    dlg.fps.setCurrentText("60")
    req = dlg.request()
    assert (req.width, req.height, req.fps) == (1280, 720, 60.0)
    assert req.kwargs()["fps"] == 60.0


def test_stream_dialog_rejects_non_urls(qtbot):
    dlg = StreamDialog(["rtsp://cam/1", "/tmp/x.mp4"])
    qtbot.addWidget(dlg)
    assert dlg.url.count() == 1  # only streams are offered from the recent list
    dlg.url.setCurrentText("/tmp/not-a-url.mp4")
    dlg._check()
    assert "not a stream URL" in dlg.error.text()


def test_qimage_wraps_without_copy_and_fit_keeps_aspect():
    from PySide6.QtCore import QRect

    a = np.zeros((48, 64, 3), np.uint8)
    a[..., 2] = 255  # red in BGR
    img = bgr_to_qimage(a)
    assert (img.width(), img.height()) == (64, 48)
    assert img.pixelColor(3, 3).red() == 255 and img.pixelColor(3, 3).blue() == 0
    assert fit_rect(640, 480, QRect(0, 0, 1000, 500)) == QRect(167, 0, 666, 500)
    with pytest.raises(ValueError):
        bgr_to_qimage(np.zeros((4, 4), np.uint8))


def test_no_model_says_why_in_the_view(make_window, frames_clip, toy_model, tmp_path, qtbot):
    toy = toy_model
    win = make_window()
    win.segmenter = None
    win.load_model(tmp_path / "missing.onnx", "cpu")
    qtbot.waitUntil(lambda: "No model loaded" in win.view.placeholder, timeout=5000)
    win.open_source(str(frames_clip))
    qtbot.waitUntil(lambda: win._pending is not None, timeout=5000)
    assert "model file not found" in win.view.placeholder and win.player is None
    win.load_model(toy, "cpu")  # a good model starts the source that was waiting
    qtbot.waitUntil(lambda: win.player is not None and win.view.frame() is not None, timeout=10000)


def test_cpu_warning_visible_when_auto_falls_back(make_window, toy_model, qtbot):
    from polypvision.model.registry import cuda_likely

    win = make_window()
    win.load_model(toy_model, "auto")
    qtbot.waitUntil(
        lambda: (
            win.segmenter is not None and "loading" not in win.model_panel.provider_label.text()
        ),
        timeout=5000,
    )
    label = win.model_panel.provider_label
    if win.segmenter.report.name == "CPU" and win.segmenter.report.expected:
        # no GPU on this machine: said plainly, not a permanent warning
        assert "Running on CPU" in label.text() and not label.styleSheet()
    elif win.segmenter.report.name == "CPU":
        assert "Running on CPU" in label.text() and label.styleSheet()
    else:  # pragma: no cover - a machine with a working GPU
        assert cuda_likely() and "CUDA" in label.text()


def test_fullscreen_hides_the_panels(make_window, frames_clip, qtbot):
    win = make_window(frames_clip)
    win.toggle_fullscreen()
    qtbot.waitUntil(lambda: not win.side.isVisible(), timeout=2000)
    win.toggle_fullscreen()
    qtbot.waitUntil(lambda: win.side.isVisible(), timeout=2000)


def test_recent_menu_reopens(make_window, frames_clip, qtbot):
    win = make_window(frames_clip)
    menu = win.actions_.recent
    win.chooser.fill_recent(menu)
    entries = [a for a in menu.actions() if a.toolTip() == str(frames_clip)]
    assert entries
    first = win.player
    entries[0].trigger()
    qtbot.waitUntil(lambda: win.player is not None and win.player is not first, timeout=10000)


def test_settings_survive_a_damaged_file(app_settings):
    from polypvision.viewer.overlay_settings import OverlaySettings

    app_settings.set("overlay/settings", "{not json")
    app_settings.set("sources/recent", "[1, 2")
    assert app_settings.overlay() == OverlaySettings()
    assert app_settings.recent == []
    app_settings.set("overlay/settings", '{"opacity": 7, "color": [1, 2, 3]}')
    assert app_settings.overlay() == OverlaySettings()  # out of range: defaults, not a crash
    app_settings.set("overlay/settings", '{"opacity": 0.5, "color": [1, 2, 3], "bogus": 1}')
    assert app_settings.overlay().opacity == 0.5 and app_settings.overlay().color == (1, 2, 3)


def test_saved_provider_is_used_when_none_is_given(app_settings, toy_model, qtbot):
    from polypvision.gui.app import create_window

    app_settings.set("model/provider", "cpu")
    win = create_window("synthetic", toy_model, "auto", settings=app_settings)
    qtbot.addWidget(win)
    assert win.provider == "cpu" and win.model_panel.provider.currentText() == "cpu"
    qtbot.waitUntil(lambda: win.player is not None, timeout=10000)
    win.close()


def test_run_app_plays_the_demo_and_exits_cleanly(
    monkeypatch, tmp_path, frames_clip, toy_model, qtbot
):
    """``polypvision`` with no source: the demo clip, looping, until the window is closed."""
    import signal

    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    import polypvision.demo
    from polypvision.gui.app import run_app
    from polypvision.gui.main_window import MainWindow

    monkeypatch.setattr(polypvision.demo, "demo_clip_path", lambda: frames_clip)
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path))
    old_handler = signal.getsignal(signal.SIGINT)
    seen = {}

    def check_then_close():
        wins = [
            w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()
        ]
        if not wins or wins[0].view.frame() is None:
            QTimer.singleShot(100, check_then_close)
            return
        seen["spec"], seen["loop"] = wins[0].player.spec, wins[0].player.runner.loop
        wins[0].close()

    QTimer.singleShot(100, check_then_close)
    try:
        assert run_app(None, toy_model, "cpu") == 0
    finally:
        signal.signal(signal.SIGINT, old_handler)
    assert seen == {
        "spec": "builtin:demo",
        "loop": True,
    }  # the keyword, whatever files the folder holds
    assert QSettings().value("playback/loop") in (
        None,
        "false",
        False,
    )  # not saved as the user's choice


def test_record_bar_shows_frames_lost_while_recording(qtbot):
    from polypvision.gui.record_bar import RecordBar

    bar = RecordBar()
    qtbot.addWidget(bar)
    bar.show_recording(65.0)
    assert bar.elapsed.text() == "REC 0:01:05" and bar.elapsed.toolTip() == ""
    bar.show_recording(66.0, 3, "3 frames never shown (lost on the way from the source)")
    assert bar.elapsed.text() == "REC 0:01:06 \u00b7 3 lost"
    assert "never shown" in bar.elapsed.toolTip()
    bar.show_recording(None)
    assert bar.elapsed.text() == "" and not bar.record_btn.isChecked()
