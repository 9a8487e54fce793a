"""Settings that persist between runs (QSettings), read and written in one place.

QSettings hands back strings from INI files and native types from other back ends; every
getter here converts and falls back to the default, so a hand-edited or stale settings file
can never stop the app from starting.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

from polypvision.viewer.overlay_settings import OverlaySettings

ORG, APP = "PolypVision", "PolypVision"


def _bool(v: object, default: bool) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return v.lower() in ("1", "true", "yes", "on")
    return default if v is None else bool(v)


class AppSettings:
    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings if qsettings is not None else QSettings(ORG, APP)

    # -- small typed helpers --------------------------------------------------------------------
    def get_bool(self, key: str, default: bool) -> bool:
        return _bool(self.q.value(key), default)

    def set(self, key: str, value: object) -> None:
        self.q.setValue(key, value)

    def get_str(self, key: str, default: str = "") -> str:
        v = self.q.value(key)
        return str(v) if v not in (None, "") else default

    def _get_json(self, key: str, default):
        try:
            v = self.q.value(key)
            return json.loads(v) if isinstance(v, str) and v else default
        except ValueError:
            return default

    # -- app-level values -----------------------------------------------------------------------
    @property
    def recent(self) -> list[str]:
        v = self._get_json("sources/recent", [])
        return [str(s) for s in v] if isinstance(v, list) else []

    @recent.setter
    def recent(self, items: list[str]) -> None:
        self.q.setValue("sources/recent", json.dumps(list(items)))

    def granted(self) -> dict[str, str]:
        v = self._get_json("sources/granted", {})
        return {str(k): str(x) for k, x in v.items()} if isinstance(v, dict) else {}

    def remember_granted(self, device: str, text: str) -> None:
        g = self.granted()
        g[device] = text
        self.q.setValue("sources/granted", json.dumps(g))

    def overlay(self) -> OverlaySettings:
        v = self._get_json("overlay/settings", {})
        base = OverlaySettings()
        if not isinstance(v, dict):
            return base
        kw = {}
        for f in fields(OverlaySettings):
            if f.name in v and f.name != "threshold":  # thresholds belong to a model, not the user
                kw[f.name] = tuple(v[f.name]) if f.name == "color" else v[f.name]
        try:
            s = OverlaySettings(**{**asdict(base), **kw})
            if len(s.color) != 3 or not 0 <= s.opacity <= 1 or not 0 <= s.smoothing <= 1:
                return base
            return s
        except (TypeError, ValueError):
            return base

    def save_overlay(self, s: OverlaySettings) -> None:
        self.q.setValue("overlay/settings", json.dumps(asdict(s)))

    def output_dir(self) -> Path:
        """Where recordings, snapshots and exports go: the user's choice,
        else ~/Videos/PolypVision."""
        v = self.get_str("output/dir")
        if v and Path(v).is_dir():
            return Path(v)
        base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MoviesLocation)
        folder = Path(base or Path.home()) / "PolypVision"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return Path.home()
        return folder

    def geometry(self) -> QByteArray | None:
        v = self.q.value("window/geometry")
        return v if isinstance(v, QByteArray) and not v.isEmpty() else None

    def sync(self) -> None:
        self.q.sync()
