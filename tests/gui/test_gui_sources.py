"""Opening every kind of source from the window, and the error path."""

from __future__ import annotations

import functools
import http.server
import threading

import cv2
import pytest

from polypvision.sources.synthetic import LiveSyntheticSource, SyntheticClip


def test_open_file_plays_with_stats(make_window, frames_clip, qtbot):
    win = make_window(frames_clip)
    p = win.player
    assert p.info.seekable and p.info.frame_count == 60
    assert win.transport.slider.isVisibleTo(win) and win.transport.slider.maximum() == 59
    qtbot.waitUntil(
        lambda: len(win.view.hud_lines) == 3 and "video" in win.view.hud_lines[0], timeout=5000
    )
    assert "overlay" in win.view.hud_lines[0] and "overlay age p95" in win.view.hud_lines[1]
    assert "CPU" in win.view.hud_lines[2]
    assert "clip.mp4" in win.side.source_label.text()
    assert str(frames_clip) in win.settings.recent


def test_open_frame_folder(make_window, tmp_path, qtbot):
    folder = tmp_path / "frames"
    folder.mkdir()
    clip = SyntheticClip(160, 120, stamp=True)
    for i in range(12):
        cv2.imwrite(str(folder / f"{i + 1}.png"), clip.frame(i))
    win = make_window(folder)
    assert win.player.info.frame_count == 12 and win.player.seekable
    assert win.player.runner.latest_shown().frame.image.shape == (120, 160, 3)


def test_synthetic_source(make_window):
    win = make_window("synthetic")
    assert win.player.seekable and not win.player.info.live


def test_device_like_live_source_shows_granted_format(make_window, qtbot):
    win = make_window()
    win.open_source("synthetic:live")
    qtbot.waitUntil(lambda: win.player is not None and win.view.frame() is not None, timeout=10000)
    assert win.player.info.live
    assert not win.transport.slider.isVisibleTo(win)  # nothing to seek in a live feed
    assert "granted: 640x480" in win.side.source_label.text()
    assert win.settings.granted()["synthetic:live"].startswith("640x480")
    assert not win.actions_.export.isEnabled()


@pytest.fixture
def http_clip(frames_clip):
    handler = functools.partial(_QuietHandler, directory=str(frames_clip.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{frames_clip.name}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_stream_url(make_window, http_clip, qtbot):
    win = make_window()
    win.open_source(http_clip)
    qtbot.waitUntil(lambda: win.player is not None and win.view.frame() is not None, timeout=15000)
    assert win.player.info.live and "stream" in win.player.info.description


def test_bad_file_reports_in_status_bar_and_keeps_playing(
    make_window, frames_clip, tmp_path, qtbot
):
    win = make_window(frames_clip)
    before = win.player
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video at all" * 100)
    win.open_source(str(bad))
    qtbot.waitUntil(lambda: "cannot decode" in win.statusBar().currentMessage(), timeout=10000)
    assert win.player is before and win.player.runner.running  # the old clip plays on
    win.open_source(str(tmp_path / "missing.mp4"))
    qtbot.waitUntil(lambda: "not found" in win.statusBar().currentMessage(), timeout=5000)


def test_bad_source_on_empty_window_shows_why(make_window, tmp_path, qtbot):
    win = make_window()
    win.open_source(str(tmp_path / "nope.mp4"))
    qtbot.waitUntil(lambda: "not found" in win.view.placeholder, timeout=5000)
    assert win.player is None


def test_signal_lost_then_reconnects(make_window, qtbot):
    win = make_window()
    # A simulated capture card that goes dark for frames 15..45 (about a second at 30 fps).
    win.open_source(
        "device:sim", source=LiveSyntheticSource(fps=30, width=160, height=120, outage=(15, 45))
    )
    qtbot.waitUntil(lambda: win.player is not None and win.view.frame() is not None, timeout=10000)
    qtbot.waitUntil(lambda: "SIGNAL LOST" in win.view.banner, timeout=10000)
    assert "signal lost" in win.statusBar().currentMessage()
    shown = win.view.frames_shown
    qtbot.waitUntil(
        lambda: win.view.banner == "" and win.view.frames_shown > shown + 3, timeout=15000
    )
    assert win.player.source.reconnects >= 1
    assert "signal back" in win.statusBar().currentMessage()


def test_drop_a_file_opens_it(make_window, frames_clip, qtbot):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    win = make_window()
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(frames_clip))])
    ev = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        md,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    win.view.dropEvent(ev)
    qtbot.waitUntil(
        lambda: win.player is not None and win.player.spec == str(frames_clip), timeout=10000
    )


def test_rapid_source_switching_leaks_no_threads(make_window, frames_clip, qtbot):
    import threading

    win = make_window(frames_clip)
    specs = [str(frames_clip), "synthetic", "synthetic:live"] * 4
    for i, spec in enumerate(specs):
        win.open_source(spec)
        if i % 3 == 2:  # let some of them actually start in between
            qtbot.waitUntil(
                lambda s=spec: win.player is not None and win.player.spec == s, timeout=10000
            )
    qtbot.waitUntil(
        lambda: (
            win.player is not None and win.player.spec == specs[-1] and win.view.frame() is not None
        ),
        timeout=10000,
    )
    qtbot.waitUntil(
        lambda: len([t for t in threading.enumerate() if t.name.startswith("pv-")]) <= 4,
        timeout=5000,
    )  # reader + inference + the live grabber (+ a finishing loader)


@pytest.fixture
def stalling_stream(frames_clip):
    """An HTTP 'camera' that sends half a clip and then goes silent with the socket open."""
    import socket

    data = frames_clip.read_bytes()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    held = []

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.recv(4096)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: %d\r\n\r\n"
                % len(data)
            )
            conn.sendall(data[: len(data) // 2])
            held.append(conn)

    threading.Thread(target=serve, name="test-stall", daemon=True).start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/clip.mp4"
    srv.close()
    for c in held:
        c.close()


def test_closing_on_a_stalled_stream_is_quick_and_does_not_crash(
    make_window, stalling_stream, qtbot
):
    import time

    win = make_window()
    win.open_source(stalling_stream)
    qtbot.waitUntil(lambda: win.player is not None and win.view.frame() is not None, timeout=15000)
    grabbers = [t for t in threading.enumerate() if t.name.startswith("pv-grab")]
    t0 = time.perf_counter()
    win.close()
    assert time.perf_counter() - t0 < 2.0
    # The grabber is still inside a blocking read; when that read times out it must release
    # the capture itself (releasing it under the read used to kill the process).
    qtbot.waitUntil(lambda: not any(t.is_alive() for t in grabbers), timeout=15000)


def test_live_view_passes_the_video_through_and_logs_its_figures(
    make_window, qtbot, caplog, monkeypatch
):
    """Every picture is shown as it arrives (not on a timer), and ``-v`` gets a line with the
    words scripts read."""
    import logging
    import re

    import polypvision.gui.display as display

    monkeypatch.setattr(display, "LOG_EVERY_S", 0.0)
    win = make_window()
    with caplog.at_level(logging.INFO, logger="polypvision.gui.display"):
        win.open_source("device:sim", source=LiveSyntheticSource(fps=30, width=160, height=120))
        qtbot.waitUntil(
            lambda: win.player is not None and win.view.frames_shown > 20, timeout=15000
        )
        qtbot.waitUntil(lambda: "overlay age p95" in caplog.text, timeout=5000)
    line = [r.getMessage() for r in caplog.records if "overlay age p95" in r.getMessage()][-1]
    assert re.search(r"video [\d.]+ fps", line) and re.search(r"overlay [\d.]+ fps", line)
    assert re.search(r"overlay age p95 \d+ ms", line) and re.search(r"dropped \d+", line)
    shown = win.player.runner.latest_shown()
    assert shown.image.shape[:2] != (120, 160)  # drawn at the size it is shown at, not the source's
    assert shown.image.shape[1] == win.view.area()[0] or shown.image.shape[0] == win.view.area()[1]


def test_synchronous_mode_shows_each_frame_with_its_own_mask(make_window, frames_clip, qtbot):
    win = make_window(frames_clip)
    win.actions_.sync.trigger()
    assert win.player.runner.mode == "sync" and win.settings.get_bool("view/sync", False)
    shown = win.view.frames_shown
    qtbot.waitUntil(lambda: win.view.frames_shown > shown + 5, timeout=10000)
    item = win.player.runner.latest_shown()
    assert item.overlay is not None and item.overlay.frame is item.frame
    win.actions_.sync.trigger()
    assert win.player.runner.mode == "pass-through"
