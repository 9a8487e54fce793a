"""GUI test setup: offscreen Qt, isolated settings, a window factory driven by the toy model.

Skips the whole folder cleanly when PySide6 or pytest-qt is missing (the core must stay
testable without Qt).
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

from pathlib import Path

import pytest

try:
    import PySide6  # noqa: F401
    import pytestqt  # noqa: F401
except ImportError:  # the core's tests still run; these are skipped, not failed
    collect_ignore_glob = ["test_*.py"]


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.gui)


@pytest.fixture
def app_settings(tmp_path):
    """Settings in a private INI file, outputs in tmp_path: tests never touch the user's."""
    from PySide6.QtCore import QSettings

    from polypvision.gui.settings import AppSettings

    s = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    out = tmp_path / "out"
    out.mkdir()
    s.set("output/dir", str(out))
    return s


@pytest.fixture
def make_window(qtbot, toy_model, app_settings):
    """make_window(source) -> a shown MainWindow playing ``source`` with the toy model on CPU."""
    from polypvision.gui.main_window import MainWindow

    made = []

    def make(source: str | None = None, wait: bool = True):
        win = MainWindow(app_settings, provider="cpu")
        qtbot.addWidget(win)
        win.resize(900, 600)
        win.show()
        win.load_model(toy_model, "cpu")
        if source is not None:
            win.open_source(str(source))
            if wait:
                wait_playing(qtbot, win)
        made.append(win)
        return win

    yield make
    for win in made:
        win.close()


def wait_playing(qtbot, win, timeout_ms: int = 10000) -> None:
    """Until the window shows at least one annotated frame."""
    qtbot.waitUntil(
        lambda: win.player is not None and win.view.frame() is not None, timeout=timeout_ms
    )


@pytest.fixture
def playing():
    """playing(qtbot, win): wait until the window shows an annotated frame."""
    return wait_playing


@pytest.fixture
def frames_clip(tmp_path_factory):
    """A short stamped 320x240 H.264 clip (small frames keep two busy cores quick)."""
    from polypvision.demo import write_synthetic_clip

    return write_synthetic_clip(
        tmp_path_factory.mktemp("gui-clips") / "clip.mp4", 60, 320, 240, 25.0, stamp=True
    )
