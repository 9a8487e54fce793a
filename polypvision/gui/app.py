"""Entry point of the desktop app: ``polypvision`` (no arguments) and ``polypvision gui [SOURCE]``."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from polypvision.gui.main_window import MainWindow
from polypvision.gui.settings import APP, ORG, AppSettings

log = logging.getLogger(__name__)


def create_window(source: str | None = None, model: str | os.PathLike[str] | None = None,
                  provider: str = "auto", settings: AppSettings | None = None) -> MainWindow:
    """Build the window and start loading the model and the source (both on worker threads)."""
    settings = settings or AppSettings()
    if provider == "auto":  # the default: the provider picked in the window last time wins
        saved = settings.get_str("model/provider", "auto")
        provider = saved if saved in ("auto", "cuda", "cpu") else "auto"
    win = MainWindow(settings, provider=provider)
    remembered = settings.get_str("model/path")
    if model is None and remembered and Path(remembered).is_file():
        model = remembered  # the model the user picked last time
    win.load_model(Path(model) if model is not None else None, provider)
    spec = str(source) if source else "demo"
    if spec == "demo":  # the demo is a showcase: keep it playing (without saving that as a setting)
        win.transport.loop_box.blockSignals(True)
        win.transport.loop_box.setChecked(True)
        win.transport.loop_box.blockSignals(False)
    win.open_source(spec)
    return win


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


def install_stop_signals(win: MainWindow) -> QTimer:
    """Ctrl+C, SIGTERM (logout, shutdown, a service manager) and SIGHUP (the terminal or ssh
    session closed) close the window properly: a recording is finished and kept, threads stop.

    Python runs signal handlers only when the interpreter gets control, so a timer ticks inside
    Qt's event loop; the returned timer must be kept alive (and stopped) by the caller.
    """
    for name in STOP_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda *_: win.close())
    ticker = QTimer()
    ticker.timeout.connect(lambda: None)
    ticker.start(200)
    return ticker


def run_app(source: str | None = None, model: str | os.PathLike[str] | None = None,
            provider: str = "auto") -> int:
    """Open the main window and run until it is closed; returns the exit status."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORG)
    app.setApplicationName(APP)
    app.setApplicationDisplayName("PolypVision")
    win = create_window(source, model, provider)
    win.show()
    ticker = install_stop_signals(win)
    code = app.exec()
    ticker.stop()
    return int(code)
