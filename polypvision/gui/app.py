"""Entry point of the desktop app: ``polypvision``
(no arguments) and ``polypvision gui [SOURCE]``."""

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
from polypvision.sources import source_kind

log = logging.getLogger(__name__)


def create_window(
    source: str | None = None,
    model: str | os.PathLike[str] | None = None,
    provider: str = "auto",
    settings: AppSettings | None = None,
) -> MainWindow:
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
    spec = str(source) if source else "builtin:demo"
    if (
        source_kind(spec) == "demo"
    ):  # the demo is a showcase: keep it playing (without saving that as a setting)
        win.transport.loop_box.blockSignals(True)
        win.transport.loop_box.setChecked(True)
        win.transport.loop_box.blockSignals(False)
        win.session.set_loop(True)
    win.open_source(spec)
    return win


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class StopSignals:
    """Ctrl+C, SIGTERM (logout, shutdown, a service manager) and SIGHUP (the terminal or ssh
    session closed) close the window properly: a recording is finished and kept, threads stop.

    Python runs signal handlers only when the interpreter gets control, so a timer ticks inside
    Qt's event loop while the handlers are installed; ``restore`` puts the previous ones back.
    """

    def __init__(self, win: MainWindow) -> None:
        self.previous = {}
        for name in STOP_SIGNALS:
            if hasattr(signal, name):
                sig = getattr(signal, name)
                self.previous[sig] = signal.signal(sig, lambda *_: win.close())
        self.ticker = QTimer()
        self.ticker.timeout.connect(lambda: None)
        self.ticker.start(200)

    def restore(self) -> None:
        self.ticker.stop()
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def install_stop_signals(win: MainWindow) -> StopSignals:
    return StopSignals(win)


def run_app(
    source: str | None = None, model: str | os.PathLike[str] | None = None, provider: str = "auto"
) -> int:
    """Open the main window and run until it is closed; returns the exit status."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORG)
    app.setApplicationName(APP)
    app.setApplicationDisplayName("PolypVision")
    win = create_window(source, model, provider)
    win.show()
    stops = install_stop_signals(win)
    try:
        code = app.exec()
    finally:
        stops.restore()
    return int(code)
