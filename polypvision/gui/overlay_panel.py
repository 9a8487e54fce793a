"""Overlay controls: on/off, style, colour, opacity, threshold, smoothing, and the alert.

The panel only edits an :class:`OverlaySettings` value and announces it; the window pushes it
into the processor, which the inference thread reads on its next frame.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QWidget,
)

from polypvision.viewer.overlay_settings import OverlaySettings


def _slider(lo: int, hi: int, tip: str) -> QSlider:
    s = QSlider(Qt.Orientation.Horizontal)
    s.setRange(lo, hi)
    s.setToolTip(tip)
    s.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    return s


class OverlayPanel(QGroupBox):
    changed = Signal(object)  # OverlaySettings
    alert_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Overlay", parent)
        self.settings = OverlaySettings()
        self.model_threshold = 0.5
        self.enabled_box = QCheckBox("Show overlay (O)")
        self.fill_box, self.contour_box, self.box_box = (
            QCheckBox("Fill"),
            QCheckBox("Contour"),
            QCheckBox("Box"),
        )
        self.color_btn = QPushButton()
        self.color_btn.setToolTip("Overlay colour")
        self.color_btn.setFixedWidth(64)
        self.opacity = _slider(0, 100, "Fill opacity")
        self.threshold = _slider(
            5, 95, "Probability threshold: lower finds more, with more false alarms"
        )
        self.threshold_label = QLabel()
        self.model_thr_btn = QPushButton("Model's")
        self.model_thr_btn.setToolTip("Use the threshold the model was validated with")
        self.smoothing = _slider(
            0, 100, "Temporal smoothing: 0 = none (may flicker), more = steadier, slower to react"
        )
        self.alert_box = QCheckBox("Alert on a new polyp (beep + flash)")
        for w in (
            self.enabled_box,
            self.fill_box,
            self.contour_box,
            self.box_box,
            self.color_btn,
            self.model_thr_btn,
            self.alert_box,
        ):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus)

        styles = QHBoxLayout()
        for b in (self.fill_box, self.contour_box, self.box_box):
            styles.addWidget(b)
        thr = QHBoxLayout()
        thr.addWidget(self.threshold, 1)
        thr.addWidget(self.threshold_label)
        thr.addWidget(self.model_thr_btn)
        form = QFormLayout(self)
        form.addRow(self.enabled_box)
        form.addRow("Style", styles)
        form.addRow("Colour", self.color_btn)
        form.addRow("Opacity", self.opacity)
        form.addRow("Threshold", thr)
        form.addRow("Smoothing", self.smoothing)
        form.addRow(self.alert_box)

        for b in (self.enabled_box, self.fill_box, self.contour_box, self.box_box):
            b.toggled.connect(self._emit)
        for s in (self.opacity, self.threshold, self.smoothing):
            s.valueChanged.connect(self._emit)
        self.threshold.sliderPressed.connect(self._threshold_touched)
        self.threshold.actionTriggered.connect(self._threshold_touched)
        self.color_btn.clicked.connect(self._pick_color)
        self.model_thr_btn.clicked.connect(self._use_model_threshold)
        self.alert_box.toggled.connect(self.alert_changed.emit)
        self._user_threshold = False
        self.set_settings(self.settings)

    # -- in -----------------------------------------------------------------------------------
    def set_settings(self, s: OverlaySettings) -> None:
        widgets = (
            self.enabled_box,
            self.fill_box,
            self.contour_box,
            self.box_box,
            self.opacity,
            self.threshold,
            self.smoothing,
        )
        for w in widgets:
            w.blockSignals(True)
        self.enabled_box.setChecked(s.enabled)
        self.fill_box.setChecked(s.fill)
        self.contour_box.setChecked(s.contour)
        self.box_box.setChecked(s.box)
        self.opacity.setValue(round(s.opacity * 100))
        self._user_threshold = s.threshold is not None
        self.threshold.setValue(
            round((s.threshold if s.threshold is not None else self.model_threshold) * 100)
        )
        self.smoothing.setValue(round(s.smoothing * 100))
        for w in widgets:
            w.blockSignals(False)
        self.settings = s
        self._show_color(s.color)
        self._update_labels()

    def set_model_threshold(self, t: float) -> None:
        """A new model: the slider follows its threshold unless the user moved it."""
        self.model_threshold = t
        if not self._user_threshold:
            self.threshold.blockSignals(True)
            self.threshold.setValue(round(t * 100))
            self.threshold.blockSignals(False)
        self._update_labels()

    # -- out ----------------------------------------------------------------------------------
    def toggle_enabled(self) -> None:
        self.enabled_box.toggle()

    def _threshold_touched(self, *_: object) -> None:
        self._user_threshold = True

    def _use_model_threshold(self) -> None:
        self._user_threshold = False
        self.set_model_threshold(self.model_threshold)
        self._emit()

    def _pick_color(self) -> None:
        b, g, r = self.settings.color
        c = QColorDialog.getColor(QColor(r, g, b), self, "Overlay colour")
        if c.isValid():
            self.settings = replace(self.settings, color=(c.blue(), c.green(), c.red()))
            self._show_color(self.settings.color)
            self._emit()

    def set_color(self, bgr: tuple[int, int, int]) -> None:
        self.settings = replace(self.settings, color=bgr)
        self._show_color(bgr)
        self._emit()

    def _show_color(self, bgr: tuple[int, int, int]) -> None:
        b, g, r = bgr
        self.color_btn.setStyleSheet(
            f"background-color: rgb({r},{g},{b}); border: 1px solid #888; min-height: 18px;"
        )

    def _update_labels(self) -> None:
        t = self.threshold.value() / 100
        self.threshold_label.setText(f"{t:.2f}")
        self.model_thr_btn.setEnabled(self._user_threshold)
        self.model_thr_btn.setToolTip(f"Use the model's threshold ({self.model_threshold:.2f})")

    def _emit(self, *_: object) -> None:
        t = self.threshold.value() / 100
        self.settings = OverlaySettings(
            enabled=self.enabled_box.isChecked(),
            fill=self.fill_box.isChecked(),
            contour=self.contour_box.isChecked(),
            box=self.box_box.isChecked(),
            color=self.settings.color,
            opacity=self.opacity.value() / 100,
            threshold=t if self._user_threshold and abs(t - self.model_threshold) > 1e-6 else None,
            smoothing=self.smoothing.value() / 100,
        )
        self._update_labels()
        self.changed.emit(self.settings)
