"""The window's side of the live session's truths (issue 23): a dead source is shown as failed
with a reopen action, not as a signal being reconnected."""

from __future__ import annotations

from test_live_session import dies_once


def test_a_dead_source_shows_failed_and_reopens(make_window, qtbot):
    win = make_window()
    win.open_source("device:sim", source=dies_once())
    qtbot.waitUntil(lambda: "FAILED" in win.view.banner, timeout=10000)
    assert "SIGNAL LOST" not in win.view.banner and "reconnecting" not in win.view.banner
    assert "driver bug" in win.statusBar().currentMessage()
    assert win.actions_.reopen.isEnabled()
    win.actions_.reopen.trigger()
    qtbot.waitUntil(
        lambda: win.view.banner == "" and win.player is not None and win.player.runner.position > 5,
        timeout=15000,
    )


def test_a_recording_recovered_at_start_is_shown_in_a_dialog(make_window, tmp_path):
    from test_live_session import killed_recording

    killed_recording(tmp_path / "out")  # the output folder of make_window's settings
    win = make_window()
    assert win.notice is not None and "recovered" in win.notice.text()
    assert (tmp_path / "out" / "polypvision-killed.mp4").is_file()
