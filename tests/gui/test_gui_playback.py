"""Play / pause / step / seek, the timeline, the overlay controls and the keyboard."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, Qt

from polypvision.pipeline.compose import Compositor
from polypvision.sources.synthetic import read_stamp


def shown_index(win) -> int:
    """The frame index stamped into the frame whose picture the view is showing right now."""
    item = win.player.runner.latest_shown()
    return read_stamp(item.frame.image) if item is not None else -1


def pause_at(qtbot, win, index: int) -> None:
    win.player.runner.pause()
    win.seek(index)
    qtbot.waitUntil(
        lambda: win.view.frame() is not None and shown_index(win) == index, timeout=5000
    )


def test_play_pause_step_seek(make_window, frames_clip, qtbot):
    win = make_window(frames_clip)
    win.toggle_play()
    qtbot.waitUntil(lambda: win.player.runner.paused, timeout=2000)
    pause_at(qtbot, win, 30)
    win.step(1)
    qtbot.waitUntil(lambda: shown_index(win) == 31, timeout=5000)
    win.step(-1)
    win.step(-1)
    qtbot.waitUntil(lambda: shown_index(win) == 29, timeout=5000)
    assert win.player.runner.paused
    qtbot.waitUntil(lambda: win.transport.slider.value() == 29, timeout=2000)
    win.toggle_play()
    qtbot.waitUntil(lambda: shown_index(win) > 32, timeout=5000)


def test_play_at_end_starts_over(make_window, frames_clip, qtbot):
    win = make_window(frames_clip)
    win.seek(57)
    qtbot.waitUntil(lambda: win.player.runner.ended, timeout=5000)
    assert win.player.runner.paused
    win.toggle_play()
    qtbot.waitUntil(lambda: 0 <= shown_index(win) < 20, timeout=5000)


def test_keyboard_shortcuts(make_window, frames_clip, qtbot):
    win = make_window(frames_clip)
    win.activateWindow()
    qtbot.waitUntil(lambda: win.isActiveWindow(), timeout=2000)
    qtbot.keyClick(win, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: win.player.runner.paused, timeout=2000)
    pause_at(qtbot, win, 10)
    qtbot.keyClick(win, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: shown_index(win) == 11, timeout=5000)
    qtbot.keyClick(win, Qt.Key.Key_Left)
    qtbot.waitUntil(lambda: shown_index(win) == 10, timeout=5000)
    assert win.overlay_settings.enabled
    qtbot.keyClick(win, Qt.Key.Key_O)
    assert not win.overlay_settings.enabled
    qtbot.keyClick(win, Qt.Key.Key_S)
    qtbot.waitUntil(lambda: "Snapshot saved" in win.statusBar().currentMessage(), timeout=3000)


def test_timeline_marks_detections_and_click_seeks(make_window, frames_clip, qtbot):
    win = make_window(frames_clip)
    track = win.player.track
    qtbot.waitUntil(
        lambda: len(track.runs()) > 0, timeout=5000
    )  # the toy model flags the red mucosa
    win.player.runner.pause()
    tl = win.transport.timeline
    assert tl.isVisibleTo(win)
    x = tl.margin + int((tl.width() - 2 * tl.margin) * 45.5 / 60)
    qtbot.mouseClick(tl, Qt.MouseButton.LeftButton, pos=QPoint(x, tl.height() // 2))
    qtbot.waitUntil(lambda: shown_index(win) == 45, timeout=5000)


def test_the_timeline_counts_polyp_events(make_window, frames_clip, qtbot):
    """The count under the timeline is polypvision.events' (the report's), over the frames seen."""
    win = make_window(frames_clip)
    win.player.runner.pause()
    win.scan_clip()
    qtbot.waitUntil(lambda: "Scan complete" in win.statusBar().currentMessage(), timeout=20000)
    n = len(win.player.track.events())
    assert n >= 1 and f"Scan complete: {n} polyp event" in win.statusBar().currentMessage()
    qtbot.waitUntil(
        lambda: win.transport.events_label.text().startswith(f"{n} polyp event"), timeout=3000
    )


def test_next_detection_jumps(make_window, frames_clip, qtbot):
    win = make_window(frames_clip)
    qtbot.waitUntil(lambda: win.player.runner.position > 20, timeout=5000)
    win.player.runner.pause()
    win.seek(0)
    qtbot.waitUntil(lambda: shown_index(win) == 0, timeout=5000)
    win.next_detection()
    qtbot.waitUntil(
        lambda: shown_index(win) == win.player.track.next_polyp(-1) or shown_index(win) == 1,
        timeout=5000,
    )


def test_overlay_controls_change_the_drawn_frame(make_window, frames_clip, qtbot):
    win = make_window(frames_clip)
    pause_at(qtbot, win, 20)
    panel = win.overlay_panel

    def shown():
        return win.player.runner.latest_shown()

    def raw(item):  # the picture without any overlay, at the size it is shown
        h, w = item.image.shape[:2]
        return Compositor().compose(item.frame.image, None, item.settings, (w, h))

    on = shown()
    assert on.overlay.detection.present and not np.array_equal(win.view.frame(), raw(on))

    panel.enabled_box.setChecked(False)  # overlay off: the raw frame, re-read while paused
    qtbot.waitUntil(
        lambda: shown() is not on and np.array_equal(win.view.frame(), raw(shown())), timeout=5000
    )

    panel.enabled_box.setChecked(True)
    panel.contour_box.setChecked(False)
    panel.opacity.setValue(100)
    panel.set_color((255, 0, 0))  # BGR blue, fully opaque inside the mask

    def blue_inside():
        item = shown()
        full = Compositor().compose(item.frame.image, item.overlay, item.settings)
        inside = full[item.overlay.mask > 0] if item.overlay is not None else full[:0]
        return inside.size and np.all(inside == (255, 0, 0))

    qtbot.waitUntil(blue_inside, timeout=5000)

    def area():  # of the mask on screen (a re-read frame has none until the model is done)
        o = shown().overlay
        return o.detection.area_fraction if o is not None else -1.0

    before = area()
    panel.threshold.triggerAction(panel.threshold.SliderAction.SliderToMaximum)  # 0.95
    qtbot.waitUntil(lambda: win.player.processor.threshold == 0.95, timeout=2000)
    qtbot.waitUntil(lambda: 0 <= area() < before, timeout=5000)
    panel.smoothing.setValue(0)
    assert (
        win.player.processor.smoothing.alpha == 1.0 and win.player.processor.smoothing.min_area == 0
    )


def test_alert_flashes_once_per_appearance(make_window, frames_clip, qtbot):
    win = make_window()
    win.overlay_panel.alert_box.setChecked(True)
    win.open_source(str(frames_clip))  # the toy model "finds" the red mucosa at once
    qtbot.waitUntil(lambda: win.view.flashing, timeout=10000)
    qtbot.waitUntil(lambda: not win.view.flashing, timeout=2000)


def test_scan_fills_the_whole_timeline(make_window, frames_clip, qtbot):
    from polypvision.pipeline.track import UNKNOWN

    win = make_window(frames_clip)
    win.player.runner.pause()
    win.scan_clip()
    qtbot.waitUntil(lambda: "Scan complete" in win.statusBar().currentMessage(), timeout=20000)
    assert not (win.player.track.state == UNKNOWN).any()


def test_scan_refused_for_live_sources(make_window, qtbot):
    win = make_window("synthetic:live")
    win.scan_clip()
    assert "can be scanned" in win.statusBar().currentMessage()
