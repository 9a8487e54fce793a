"""Model picker and the execution provider that is really running.

Any ONNX file with a valid polypvision contract can be chosen; loading happens on a worker
thread (the window does that), and a failed load keeps the previous model running. When CUDA
was asked for (``auto`` or ``cuda``) but the CPU runs, the provider line turns into a warning
that stays visible: a reviewer must know why the overlay lags.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from polypvision.model.registry import shipped_models
from polypvision.viewer.labels import provider_text

PROVIDERS = ("auto", "cuda", "cpu")
WARN_STYLE = "color: #8a4b00; background: #ffe8b0; border: 1px solid #e0a030; padding: 3px;"


class ModelPanel(QGroupBox):
    model_chosen = Signal(object)  # Path
    provider_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self.combo = QComboBox()
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.combo.setMinimumContentsLength(10)
        self.combo.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.browse = QPushButton("Other\u2026")
        self.browse.setToolTip("Load any ONNX model that carries a polypvision contract")
        self.browse.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.provider = QComboBox()
        self.provider.addItems(PROVIDERS)
        self.provider.setToolTip("auto: CUDA when it really runs, else CPU")
        self.provider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.provider_label = QLabel("no model loaded")
        self.provider_label.setWordWrap(True)
        self.info_label = QLabel("")
        self.info_label.setWordWrap(True)
        self.info_label.setStyleSheet("color: #666;")

        row = QHBoxLayout()
        row.addWidget(self.combo, 1)
        row.addWidget(self.browse)
        form = QFormLayout(self)
        form.addRow("Model", row)
        form.addRow("Provider", self.provider)
        form.addRow(self.provider_label)
        form.addRow(self.info_label)

        self.browse.clicked.connect(self._browse)
        self.combo.activated.connect(self._picked)
        self.provider.activated.connect(
            lambda i: self.provider_chosen.emit(self.provider.itemText(i))
        )
        self.populate()

    def populate(self, current: Path | None = None, extra: list[Path] | None = None) -> None:
        paths: list[Path] = []
        for p in [*shipped_models(), *(extra or []), *([current] if current else [])]:
            if p not in paths:
                paths.append(p)
        self.combo.blockSignals(True)
        self.combo.clear()
        for p in paths:
            self.combo.addItem(p.stem.removeprefix("polypvision-"), str(p))  # the column is narrow
            self.combo.setItemData(self.combo.count() - 1, str(p), Qt.ItemDataRole.ToolTipRole)
        if current is not None:
            self.combo.setCurrentIndex(self.combo.findData(str(current)))
        self.combo.blockSignals(False)

    def set_provider(self, name: str) -> None:
        self.provider.setCurrentText(name if name in PROVIDERS else "auto")

    def show_loaded(self, segmenter, asked: str) -> None:
        text, warn = provider_text(asked, segmenter.report if segmenter else None)
        self.provider_label.setText(text)
        self.provider_label.setStyleSheet(WARN_STYLE if warn else "")
        self.provider_label.setToolTip(str(segmenter.report) if segmenter else "")
        if segmenter is not None:
            c = segmenter.contract
            self.info_label.setText(
                f"{c.name}: {c.input.width}x{c.input.height} input, "
                f"threshold {c.output.threshold:.2f}"
            )
            self.populate(segmenter.path)

    def show_loading(self, path: Path) -> None:
        self.provider_label.setText(f"loading {path.name}\u2026")
        self.provider_label.setStyleSheet("")

    def _picked(self, index: int) -> None:
        data = self.combo.itemData(index)
        if data:
            self.model_chosen.emit(Path(data))

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose an ONNX model", str(Path.cwd()), "ONNX models (*.onnx)"
        )
        if path:
            self.model_chosen.emit(Path(path))
