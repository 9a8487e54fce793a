"""Choosing a source, without Qt: capture-device requests and formats, what a device granted,
and the recent-sources list (the dialogs around them are :mod:`polypvision.gui.source_dialogs`).

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
from typing import Any

from polypvision.sources import source_kind

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

    def kwargs(self) -> dict[str, Any]:
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
        out = subprocess.run(
            [tool, "-d", dev, "--list-formats-ext"],
            capture_output=True,
            text=True,
            timeout=3,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_v4l2_formats(out)


def granted_text(extra: dict[str, Any]) -> str:
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
