"""Transport bar: play/pause, step, seek slider, and the detection timeline under it.

The timeline counts polyp events as :mod:`polypvision.events` defines them (the report and the
batch summary count the same way), over the frames analysed so far.

The slider only seeks on release or a click on its groove: every seek makes the decoder jump
to a keyframe and decode forward, so seeking on every pixel of a drag would queue dozens of
expensive seeks behind each other. A click on the groove jumps to the clicked point, as a click
on the detection strip under it does (Qt's default, a page step of 10 frames towards the click,
moved the picture elsewhere than the strip said).
"""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QAbstractSlider,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QStyle,
    QStyleOptionSlider,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from polypvision.pipeline.track import CLEAR, POLYP, DetectionTrack
from polypvision.viewer.labels import events_text


def _clock(seconds: float) -> str:
    m, s = divmod(max(seconds, 0.0), 60.0)
    return f"{int(m):02d}:{s:04.1f}"


class DetectionTimeline(QWidget):
    """A strip the width of the seek bar: frames with a polyp in colour, seen frames grey.

    Clicking (or dragging) jumps there, so a reviewer can go straight to the findings.
    """

    seek_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFixedHeight(12)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setMouseTracking(True)
        self.setToolTip("Detection timeline: frames where a polyp was found (click to jump there)")
        self.track: DetectionTrack | None = None
        self.position = -1
        self.margin = 0  # matches the slider's handle half-width so frames line up
        self.color = QColor(0, 220, 90)
        self._painted_version = -1

    def set_track(self, track: DetectionTrack | None) -> None:
        self.track = track
        self._painted_version = -1
        self.setVisible(track is not None)
        self.update()

    def refresh(self, position: int) -> None:
        """Repaint only when something changed (called by the display timer)."""
        t = self.track
        if t is None:
            return
        if t.version != self._painted_version or position != self.position:
            self.position = position
            self.update()

    def _lane(self) -> QRect:
        return self.rect().adjusted(self.margin, 2, -self.margin, -2)

    def _x(self, frame: float, lane: QRect, n: int) -> int:
        return lane.x() + int(lane.width() * frame / max(n, 1))

    def frame_at(self, x: float) -> int:
        lane = self._lane()
        n = len(self.track) if self.track is not None else 0
        if n == 0 or lane.width() <= 0:
            return 0
        return int(min(max((x - lane.x()) / lane.width(), 0.0), 0.999999) * n)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        lane = self._lane()
        p.fillRect(lane, QColor(45, 45, 50))
        t = self.track
        if t is not None and len(t):
            n = len(t)
            self._painted_version = t.version
            for value, colour in ((CLEAR, QColor(95, 95, 105)), (POLYP, self.color)):
                for a, b in t.runs(value):
                    x0, x1 = self._x(a, lane, n), self._x(b, lane, n)
                    p.fillRect(QRect(x0, lane.y(), max(x1 - x0, 1), lane.height()), colour)
            if self.position >= 0:
                x = self._x(self.position + 0.5, lane, n)
                p.fillRect(QRect(x - 1, 0, 2, self.height()), QColor(255, 255, 255))
        p.end()

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.track is not None and event.button() == Qt.MouseButton.LeftButton:
            self.seek_requested.emit(self.frame_at(event.position().x()))

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.track is None:
            return
        i = self.frame_at(event.position().x())
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.seek_requested.emit(i)
        else:
            what = {POLYP: "polyp", CLEAR: "no polyp"}.get(
                int(self.track.state[i]), "not analysed yet (T scans)"
            )
            ev = self.track.event_at(i)
            if ev is not None:
                what += f" (polyp event {ev.number}: {ev.duration_s:.1f} s)"
            QToolTip.showText(event.globalPosition().toPoint(), f"frame {i + 1}: {what}", self)


class SeekSlider(QSlider):
    """A seek bar whose groove jumps to the clicked frame instead of paging towards it."""

    clicked_to = Signal(int)

    def value_at(self, x: float) -> int:
        """The slider value under pixel ``x``, by the style's own geometry (handle-centred)."""
        opt = QStyleOptionSlider()
        self.initStyleOption(opt)
        st = self.style()
        groove = st.subControlRect(
            QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderGroove, self
        )
        handle = st.subControlRect(
            QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderHandle, self
        )
        span = max(groove.width() - handle.width(), 1)
        pos = int(round(x - groove.x() - handle.width() / 2))
        return QStyle.sliderValueFromPosition(
            self.minimum(), self.maximum(), min(max(pos, 0), span), span, opt.upsideDown
        )

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.button() != Qt.MouseButton.LeftButton:
            super().mousePressEvent(event)
            return
        opt = QStyleOptionSlider()
        self.initStyleOption(opt)
        hit = self.style().hitTestComplexControl(
            QStyle.ComplexControl.CC_Slider, opt, event.position().toPoint(), self
        )
        if hit == QStyle.SubControl.SC_SliderHandle:
            super().mousePressEvent(event)  # a drag of the handle seeks on release
            return
        value = self.value_at(event.position().x())
        self.blockSignals(True)
        self.setValue(value)
        self.blockSignals(False)
        self.clicked_to.emit(value)
        event.accept()


class TransportBar(QWidget):
    play_pause = Signal()
    step = Signal(int)
    seek = Signal(int)
    loop_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        st = self.style()
        self._play_icon = st.standardIcon(QStyle.StandardPixmap.SP_MediaPlay)
        self._pause_icon = st.standardIcon(QStyle.StandardPixmap.SP_MediaPause)
        self.back_btn = self._button(
            st.standardIcon(QStyle.StandardPixmap.SP_MediaSeekBackward),
            "Step back one frame (Left)",
            lambda: self.step.emit(-1),
        )
        self.play_btn = self._button(self._pause_icon, "Play / pause (Space)", self.play_pause.emit)
        self.fwd_btn = self._button(
            st.standardIcon(QStyle.StandardPixmap.SP_MediaSeekForward),
            "Step forward one frame (Right)",
            lambda: self.step.emit(1),
        )
        self.slider = SeekSlider(Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.setToolTip("Seek")
        self.slider.sliderReleased.connect(lambda: self.seek.emit(self.slider.value()))
        self.slider.actionTriggered.connect(self._on_action)  # the wheel
        self.slider.clicked_to.connect(self.seek.emit)
        self.timeline = DetectionTimeline()
        self.timeline.seek_requested.connect(self.seek.emit)
        self.events_label = QLabel("")
        self.events_label.setToolTip(
            "Polyp events so far: detections lasting long enough, short gaps bridged "
            "(as in the report)"
        )
        self.time_label = QLabel("--:--")
        self.time_label.setMinimumWidth(150)
        self.time_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.loop_box = QCheckBox("Loop")
        self.loop_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.loop_box.toggled.connect(self.loop_changed.emit)

        bars = QVBoxLayout()
        bars.setSpacing(1)
        bars.addWidget(self.slider)
        bars.addWidget(self.timeline)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 2, 4, 2)
        for w in (self.back_btn, self.play_btn, self.fwd_btn):
            row.addWidget(w)
        row.addLayout(bars, 1)
        row.addWidget(self.time_label)
        row.addWidget(self.events_label)
        row.addWidget(self.loop_box)
        self.fps = 25.0
        self._shows_paused = False
        self._events_version = -1
        self.set_source(None, active=False)

    def _button(self, icon, tip: str, slot) -> QToolButton:
        b = QToolButton()
        b.setIcon(icon)
        b.setToolTip(tip)
        b.setAutoRaise(True)
        b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        b.clicked.connect(slot)
        return b

    def _on_action(self, action: int) -> None:
        if action != QAbstractSlider.SliderAction.SliderMove.value:
            # The slider's value changes after this signal; read it on the next turn of the loop.
            QTimer.singleShot(0, lambda: self.seek.emit(self.slider.value()))

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.timeline.margin = self.style().pixelMetric(QStyle.PixelMetric.PM_SliderLength) // 2

    # -- state from the window -------------------------------------------------------------------
    def set_source(
        self,
        frame_count: int | None,
        seekable: bool = False,
        fps: float = 25.0,
        track: DetectionTrack | None = None,
        active: bool = True,
    ) -> None:
        """Adapt to a new source; ``active=False`` before any source plays."""
        self.fps = fps if fps > 0 else 25.0
        can_seek = bool(seekable and frame_count)
        self.slider.setVisible(can_seek)
        self.slider.setEnabled(can_seek)
        self.slider.setRange(0, max((frame_count or 1) - 1, 0))
        for b in (self.back_btn, self.fwd_btn):
            b.setEnabled(bool(seekable))
        self.loop_box.setVisible(bool(seekable))
        self.timeline.set_track(track)
        self.events_label.setVisible(track is not None)
        self.events_label.setText("")
        self._events_version = -1
        self.play_btn.setEnabled(active)
        self.time_label.setText("")

    def show_position(
        self,
        index: int,
        frame_count: int | None,
        paused: bool,
        live: bool,
        seconds: float | None = None,
    ) -> None:
        """``seconds``: the frame's own media time (its timestamp), else index / fps."""
        if paused != self._shows_paused:  # called at display rate: touch widgets only on change
            self._shows_paused = paused
            self.play_btn.setIcon(self._play_icon if paused else self._pause_icon)
        if live:
            self.time_label.setText(f"live  frame {max(index, 0)}")
            return
        if not self.slider.isSliderDown() and index >= 0:
            self.slider.blockSignals(True)
            self.slider.setValue(index)
            self.slider.blockSignals(False)
        total = f" / {frame_count}" if frame_count else ""
        self.time_label.setText(
            f"{_clock(seconds if seconds is not None else max(index, 0) / self.fps)}  "
            f"frame {max(index, 0) + 1}{total}"
        )
        self.timeline.refresh(index)

    def show_events(self) -> None:
        """Recount the timeline's polyp events if it changed
        (called at the figures' slower rate)."""
        track = self.timeline.track
        if track is not None and track.version != self._events_version:
            self._events_version = track.version
            self.events_label.setText(events_text(len(track.events())))
