"""The desktop app as a user runs it, recording until a signal arrives (not a test module).

Usage: python _record_app.py SOURCE MODEL OUT_DIR SETTINGS_INI [FRAMES]

Prints ``RECORDING`` once FRAMES frames (default 30) are in the recording, then runs until the
window closes (a signal handled as the app handles it), and prints the status bar's last message.
tests/gui/test_gui_reliability.py sends it SIGTERM, SIGHUP or SIGKILL."""

from __future__ import annotations

import sys

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from polypvision.gui.app import create_window, install_stop_signals
from polypvision.gui.settings import AppSettings


def main() -> int:
    source, model, out_dir, ini = sys.argv[1:5]
    wanted = int(sys.argv[5]) if len(sys.argv) > 5 else 30
    app = QApplication(sys.argv[:1])
    settings = AppSettings(QSettings(ini, QSettings.Format.IniFormat))
    settings.set("output/dir", out_dir)
    settings.set("playback/loop", True)
    win = create_window(source, model, "cpu", settings)
    win.show()
    stops = install_stop_signals(win)
    state = {"said": False}

    def poll() -> None:
        p = win.player
        if p is None or not p.runner.running:
            return
        if not p.recording and not state["said"]:
            win.toggle_record()
        elif p.recording and p.recorder.frames >= wanted and not state["said"]:
            state["said"] = True
            print("RECORDING", flush=True)

    timer = QTimer()
    timer.timeout.connect(poll)
    timer.start(50)
    code = app.exec()
    stops.restore()
    print(f"LAST {win.statusBar().currentMessage()}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
