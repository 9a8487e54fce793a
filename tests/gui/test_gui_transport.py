"""The transport bar's seek bar and the detection strip under it move the picture alike."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QStyle, QStyleOptionSlider

from polypvision.gui.transport import TransportBar
from polypvision.pipeline.track import DetectionTrack


def _x_of(slider, value: int) -> int:
    """The slider's pixel for ``value`` (the centre of the handle there), from its style."""
    opt = QStyleOptionSlider()
    slider.initStyleOption(opt)
    groove = slider.style().subControlRect(
        QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderGroove, slider
    )
    handle = slider.style().subControlRect(
        QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderHandle, slider
    )
    span = groove.width() - handle.width()
    return (
        groove.x()
        + handle.width() // 2
        + QStyle.sliderPositionFromValue(slider.minimum(), slider.maximum(), value, span)
    )


def test_a_click_on_the_seek_bar_seeks_to_the_clicked_point(qtbot):
    """A click on the groove jumps there, as a click on the timeline does (not a page of 10)."""
    bar = TransportBar()
    qtbot.addWidget(bar)
    bar.resize(900, 60)
    track = DetectionTrack(200, 25.0)
    bar.set_source(200, seekable=True, fps=25.0, track=track)
    bar.show()
    qtbot.waitExposed(bar)
    bar.show_position(0, 200, paused=True, live=False)
    seeks: list[int] = []
    bar.seek.connect(seeks.append)
    s = bar.slider
    x = _x_of(s, 150)
    qtbot.mouseClick(s, Qt.MouseButton.LeftButton, pos=QPoint(x, s.height() // 2))
    qtbot.waitUntil(lambda: len(seeks) > 0)
    qtbot.wait(1)  # a deferred (next turn of the loop) seek would land now
    assert abs(seeks[-1] - 150) <= 2, seeks
    assert all(abs(v - 150) <= 2 for v in seeks), seeks  # never a page step on the way
    assert abs(s.value() - 150) <= 2

    # the strip under the bar, clicked at the same x, goes to the same place
    strip: list[int] = []
    bar.timeline.seek_requested.connect(strip.append)
    tl = bar.timeline
    tx = s.mapTo(bar, QPoint(x, 0)).x() - tl.mapTo(bar, QPoint(0, 0)).x()
    qtbot.mouseClick(tl, Qt.MouseButton.LeftButton, pos=QPoint(tx, tl.height() // 2))
    assert strip and abs(strip[-1] - seeks[-1]) <= 2, (strip, seeks)


def test_the_clock_reads_the_frames_own_time_not_index_over_rate(qtbot):
    """A variable-frame-rate file: frame 101 may sit at 8.0 s where 100 / 25 fps says 4.0 s."""
    bar = TransportBar()
    qtbot.addWidget(bar)
    bar.set_source(200, seekable=True, fps=25.0, track=DetectionTrack(200, 25.0))
    bar.show_position(100, 200, paused=True, live=False, seconds=8.0)
    assert bar.time_label.text().startswith("00:08.0  frame 101 / 200")
    bar.show_position(100, 200, paused=True, live=False)  # no timestamp known: index / fps
    assert bar.time_label.text().startswith("00:04.0  frame 101 / 200")
