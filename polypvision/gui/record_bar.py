"""Record and snapshot buttons, the elapsed-time indicator, and the stats readout.

The stats text comes from :func:`polypvision.pipeline.stats.format_stats`, the same pure
function the CLI prints, so the app and the bench always describe a run the same way; it is
shown here when the HUD on the video is switched off.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

REC_STYLE = "QPushButton { background: #c62828; color: white; font-weight: bold; }"


def _elapsed(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h:d}:{m:02d}:{s:02d}"


class RecordBar(QWidget):
    record_clicked = Signal()
    snapshot_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.record_btn = QPushButton("\u25cf Record")
        self.record_btn.setToolTip("Record the annotated view to an H.264 MP4 (R)")
        self.record_btn.setCheckable(True)
        self.snapshot_btn = QPushButton("Snapshot")
        self.snapshot_btn.setToolTip("Save the current annotated frame as PNG (S)")
        for b in (self.record_btn, self.snapshot_btn):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.elapsed = QLabel("")
        self.elapsed.setMinimumWidth(70)
        self.elapsed.setVisible(False)
        self.stats = QLabel("")
        self.stats.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.stats.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 0, 4, 2)
        row.addWidget(self.record_btn)
        row.addWidget(self.elapsed)
        row.addWidget(self.snapshot_btn)
        row.addStretch(1)
        row.addWidget(self.stats)
        self.record_btn.clicked.connect(self._record_clicked)
        self.snapshot_btn.clicked.connect(self.snapshot_clicked.emit)

    def _record_clicked(self) -> None:
        # The window decides whether recording really started; undo the button's own toggle.
        self.record_btn.setChecked(not self.record_btn.isChecked())
        self.record_clicked.emit()

    def show_recording(self, elapsed_s: float | None, lost: int = 0, why: str = "") -> None:
        """The elapsed time while recording; ``lost`` frames the file will not hold so far, with
        ``why`` (the recorder's loss text) as the tooltip."""
        on = elapsed_s is not None
        if self.record_btn.isChecked() != on:
            self.record_btn.setChecked(on)
            self.record_btn.setText("\u25a0 Stop" if on else "\u25cf Record")
            self.record_btn.setStyleSheet(REC_STYLE if on else "")
        self.elapsed.setVisible(on)
        text = f"REC {_elapsed(elapsed_s)}" if elapsed_s is not None else ""
        if on and lost:
            text += f" \u00b7 {lost} lost"
        self.elapsed.setText(text)
        self.elapsed.setToolTip(why if on else "")
        self.elapsed.setStyleSheet("color: #c62828; font-weight: bold;" if on else "")

    def show_stats(self, lines: list[str] | None) -> None:
        """The format_stats lines (the same text the CLI prints), or nothing."""
        text = "\n".join(lines or [])
        if text != self.stats.text():
            self.stats.setText(text)
