"""The control column beside the video: source details, model, overlay."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QScrollArea, QVBoxLayout, QWidget

from polypvision.gui.model_panel import ModelPanel
from polypvision.gui.overlay_panel import OverlayPanel
from polypvision.types import SourceInfo
from polypvision.viewer.source_choices import granted_text

WIDTH = 340


class SidePanel(QScrollArea):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source_label = QLabel("No source")
        self.source_label.setWordWrap(True)
        self.source_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        source_box = QGroupBox("Source")
        QFormLayout(source_box).addRow(self.source_label)
        self.model = ModelPanel()
        self.overlay = OverlayPanel()
        inner = QWidget()
        lay = QVBoxLayout(inner)
        for w in (source_box, self.model, self.overlay):
            lay.addWidget(w)
        lay.addStretch(1)
        self.setWidget(inner)
        self.setWidgetResizable(True)
        self.setFixedWidth(WIDTH)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def show_source(self, info: SourceInfo) -> None:
        granted = granted_text(info.extra)
        self.source_label.setText(
            f"{info.description}\n{info.width}x{info.height} @ {info.fps:g} fps"
            + (" (measured: the device does not say)" if info.extra.get("fps_measured") else "")
            + (f", {info.frame_count} frames" if info.frame_count else "")
            + (" (live)" if info.live else "")
            + (f"\ngranted: {granted}" if granted else "")
        )
