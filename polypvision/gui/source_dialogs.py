"""Choosing a source: capture-device and stream-URL dialogs, and the recent-sources list.

A capture card is asked for a resolution and frame rate; what it actually granted is only
known once it is open, so the window shows the granted format beside the source name and the
device dialog shows what each device granted last time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
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

SIMULATED = "synthetic:live"
RESOLUTIONS = ("device default", "640x480", "1280x720", "1920x1080", "3840x2160")
FRAME_RATES = ("device default", "25", "30", "50", "60")
FOURCCS = ("device default", "MJPG", "YUYV", "H264")
MAX_RECENT = 10


@dataclass(frozen=True)
class DeviceRequest:
    spec: str
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    fourcc: str | None = None

    def kwargs(self) -> dict:
        """Each choice on its own; None keeps the device's default for that one."""
        return {"width": self.width, "height": self.height, "fps": self.fps, "fourcc": self.fourcc}


def device_name(dev: str) -> str:
    """The driver's name for /dev/videoN (e.g. the capture card's model), if sysfs has it."""
    name = Path("/sys/class/video4linux") / Path(dev).name / "name"
    try:
        return name.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def parse_v4l2_formats(text: str) -> list[tuple[str, int, int, float]]:
    """(fourcc, width, height, fps) rows from ``v4l2-ctl --list-formats-ext`` output."""
    rows: list[tuple[str, int, int, float]] = []
    fourcc, size = "", None
    for line in text.splitlines():
        if m := re.search(r"\[\d+\]: '(\w+)'", line):
            fourcc, size = m.group(1), None
        elif m := re.search(r"Size: \w+ (\d+)x(\d+)", line):
            size = (int(m.group(1)), int(m.group(2)))
        elif (m := re.search(r"\(([\d.]+) fps\)", line)) and size and fourcc:
            rows.append((fourcc, size[0], size[1], float(m.group(1))))
    return rows


def device_formats(dev: str) -> list[tuple[str, int, int, float]]:
    """What a V4L2 device offers, if v4l2-ctl is installed (OpenCV cannot list formats)."""
    tool = shutil.which("v4l2-ctl")
    if tool is None or not dev.startswith("/dev/"):
        return []
    try:
        out = subprocess.run([tool, "-d", dev, "--list-formats-ext"], capture_output=True, text=True,
                             timeout=3, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_v4l2_formats(out)


def granted_text(extra: dict) -> str:
    """'1280x720 @ 30 fps MJPG' from SourceInfo.extra, or '' if the source reports none."""
    if not extra or "granted_width" not in extra:
        return ""
    fps = float(extra.get("granted_fps") or 0.0)
    text = f"{extra['granted_width']}x{extra['granted_height']}"
    if fps:
        text += f" @ {fps:g} fps"
    if extra.get("granted_fourcc"):
        text += f" {extra['granted_fourcc']}"
    return text


class DeviceDialog(QDialog):
    """Lists /dev/video* (plus a simulated capture card) with a requested format."""

    def __init__(self, last_granted: dict[str, str] | None = None, parent: QWidget | None = None) -> None:
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
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
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
        self.offered.setText(f"{len(sizes)} sizes, {', '.join(codes)}, up to {rates[0]:g} fps" if rows
                             else "unknown (install v4l-utils to list formats)")

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
        self.url.lineEdit().setPlaceholderText("rtsp://host:554/stream  or  udp://@:5000  or  http://\u2026")
        self.url.setMinimumWidth(420)
        self.error = QLabel("")
        self.error.setStyleSheet("color: #b00020;")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
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
            self.error.setText("That is not a stream URL; it must start with rtsp://, udp://, http:// \u2026")
            return
        self.accept()


def push_recent(recent: list[str], spec: str) -> list[str]:
    """Most recent first, no duplicates, at most MAX_RECENT; the demo clip is not remembered."""
    if not spec or source_kind(spec) in ("demo", "synthetic"):
        return recent
    return [spec, *[r for r in recent if r != spec]][:MAX_RECENT]


def recent_label(spec: str) -> str:
    kind = source_kind(spec)
    if kind in ("file", "frames"):
        p = Path(spec)
        return f"{p.name}  \u2014  {p.parent}" + ("  (folder)" if kind == "frames" else "")
    return spec


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

        path, _ = QFileDialog.getOpenFileName(self.parent, "Open video", self._start_dir(), self.VIDEO_FILTER)
        if path:
            self.open_source(path)

    def open_folder(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path = QFileDialog.getExistingDirectory(self.parent, "Open a folder of frames", self._start_dir())
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

        path = QFileDialog.getExistingDirectory(self.parent, "Folder for recordings, snapshots and exports",
                                                str(self.settings.output_dir()))
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
        menu.addAction("Simulated capture card").triggered.connect(lambda: self.open_source(SIMULATED))
