"""Choosing a source: the capture-device and stream-URL dialogs and the File menu's entries.

The choices themselves (requests, formats, what a device granted, the recent list) are
:mod:`polypvision.viewer.source_choices`.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from polypvision.sources import list_capture_devices, source_kind
from polypvision.viewer.source_choices import (
    FOURCCS,
    FRAME_RATES,
    RESOLUTIONS,
    SIMULATED,
    DeviceRequest,
    device_formats,
    device_name,
    recent_label,
)


class DeviceDialog(QDialog):
    """Lists /dev/video* (plus a simulated capture card) with a requested format."""

    def __init__(
        self, last_granted: dict[str, str] | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Connect capture device")
        self.last_granted = last_granted or {}
        self.devices = QComboBox()
        for dev in list_capture_devices():
            label = dev + (f"  ({device_name(dev)})" if device_name(dev) else "")
            self.devices.addItem(label, dev)
        self.devices.addItem("Simulated capture card (synthetic)", SIMULATED)
        self.resolution, self.fps, self.fourcc = QComboBox(), QComboBox(), QComboBox()
        self.granted = QLabel()
        self.granted.setWordWrap(True)
        self.granted.setStyleSheet("color: #555;")
        self.offered = QLabel()
        self.offered.setWordWrap(True)
        self.offered.setStyleSheet("color: #555;")
        form = QFormLayout()
        form.addRow("Device", self.devices)
        form.addRow("Resolution", self.resolution)
        form.addRow("Frame rate", self.fps)
        form.addRow("Pixel format", self.fourcc)
        form.addRow("Offers", self.offered)
        form.addRow("Last granted", self.granted)
        note = QLabel("The device may grant a different format; the window shows what it granted.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Connect")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addWidget(buttons)
        self.devices.currentIndexChanged.connect(self._show_granted)
        self._show_granted()

    def _show_granted(self, *_: object) -> None:
        dev = self.devices.currentData()
        self.granted.setText(self.last_granted.get(dev, "not connected yet"))
        rows = device_formats(dev)
        sizes = sorted({(w, h) for _, w, h, _ in rows}, reverse=True)
        rates = sorted({f for *_, f in rows}, reverse=True)
        codes = sorted({c for c, *_ in rows})
        self._fill(self.resolution, [f"{w}x{h}" for w, h in sizes] or list(RESOLUTIONS[1:]))
        self._fill(self.fps, [f"{r:g}" for r in rates] or list(FRAME_RATES[1:]))
        self._fill(self.fourcc, codes or list(FOURCCS[1:]))
        self.offered.setText(
            f"{len(sizes)} sizes, {', '.join(codes)}, up to {rates[0]:g} fps"
            if rows
            else "unknown (install v4l-utils to list formats)"
        )

    @staticmethod
    def _fill(combo: QComboBox, items: list[str]) -> None:
        combo.clear()
        combo.addItems(["device default", *items])

    def request(self) -> DeviceRequest:
        dev = self.devices.currentData()
        w = h = None
        if self.resolution.currentIndex() > 0:
            w, h = (int(v) for v in self.resolution.currentText().split("x"))
        fps = float(self.fps.currentText()) if self.fps.currentIndex() > 0 else None
        fourcc = self.fourcc.currentText() if self.fourcc.currentIndex() > 0 else None
        return DeviceRequest(dev, w, h, fps, fourcc)


class StreamDialog(QDialog):
    def __init__(self, recent: list[str] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open stream URL")
        self.url = QComboBox()
        self.url.setEditable(True)
        self.url.addItems([r for r in (recent or []) if source_kind(r) == "stream"])
        self.url.setCurrentText("")
        self.url.lineEdit().setPlaceholderText(
            "rtsp://host:554/stream  or  udp://@:5000  or  http://\u2026"
        )
        self.url.setMinimumWidth(420)
        self.error = QLabel("")
        self.error.setStyleSheet("color: #b00020;")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._check)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Stream URL (RTSP, UDP, RTMP, SRT, HTTP):"))
        lay.addWidget(self.url)
        lay.addWidget(self.error)
        lay.addWidget(buttons)

    def value(self) -> str:
        return self.url.currentText().strip()

    def _check(self) -> None:
        if source_kind(self.value()) != "stream":
            self.error.setText(
                "That is not a stream URL; it must start with rtsp://, udp://, http:// \u2026"
            )
            return
        self.accept()


class SourceChooser:
    """The File-menu entries that pick a source; each ends in ``open_source(spec, **kwargs)``."""

    VIDEO_FILTER = "Videos (*.mp4 *.avi *.mov *.mkv *.mpg *.mpeg *.m4v *.webm *.wmv);;All files (*)"

    def __init__(self, parent: QWidget, settings, open_source) -> None:
        self.parent, self.settings, self.open_source = parent, settings, open_source

    def _start_dir(self) -> str:
        for r in self.settings.recent:
            if source_kind(r) in ("file", "frames") and Path(r).parent.is_dir():
                return str(Path(r).parent)
        return str(Path.home())

    def open_file(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(
            self.parent, "Open video", self._start_dir(), self.VIDEO_FILTER
        )
        if path:
            self.open_source(path)

    def open_folder(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path = QFileDialog.getExistingDirectory(
            self.parent, "Open a folder of frames", self._start_dir()
        )
        if path:
            self.open_source(path)

    def open_device(self) -> None:
        dlg = DeviceDialog(self.settings.granted(), self.parent)
        if dlg.exec() == QDialog.DialogCode.Accepted:
            req = dlg.request()
            self.open_source(req.spec, **req.kwargs())

    def open_stream(self) -> None:
        dlg = StreamDialog(self.settings.recent, self.parent)
        if dlg.exec() == QDialog.DialogCode.Accepted and dlg.value():
            self.open_source(dlg.value())

    def choose_output_dir(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path = QFileDialog.getExistingDirectory(
            self.parent,
            "Folder for recordings, snapshots and exports",
            str(self.settings.output_dir()),
        )
        if path:
            self.settings.set("output/dir", path)

    def fill_recent(self, menu) -> None:
        """Rebuilt each time the menu opens, so it always reflects the settings."""
        menu.clear()
        recent = self.settings.recent
        for spec in recent:
            act = menu.addAction(recent_label(spec))
            act.setToolTip(spec)
            act.triggered.connect(lambda _=False, s=spec: self.open_source(s))
        if not recent:
            menu.addAction("(none yet)").setEnabled(False)
        menu.addSeparator()
        menu.addAction("Demo clip").triggered.connect(lambda: self.open_source("builtin:demo"))
        menu.addAction("Simulated capture card").triggered.connect(
            lambda: self.open_source(SIMULATED)
        )
