"""Menus, actions and keyboard shortcuts, built in one place so the window stays readable.

Single-key shortcuts (Space, arrows, R, S, O, F) are window-wide; the window's controls take
no keyboard focus, so no button or slider swallows them.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QMessageBox

SHORTCUTS = """Space: play / pause
Left / Right: step one frame back / forward
N: jump to the next detection
T: scan the whole clip (fills the detection timeline)
R: start / stop recording
S: snapshot (PNG of the annotated frame)
O: overlay on / off
H: stats on the video on / off
Y: synchronous overlay on / off (each frame shown with its own mask, for review)
F or Esc: fullscreen on / off
Ctrl+O: open a video, Ctrl+Shift+O: a folder of frames
Ctrl+D: capture device, Ctrl+U: stream URL, Ctrl+R: reopen the source, Ctrl+E: export"""


@dataclass
class Actions:
    open_file: QAction
    open_folder: QAction
    open_device: QAction
    open_stream: QAction
    recent: QMenu
    reopen: QAction
    export: QAction
    output_dir: QAction
    snapshot: QAction
    quit: QAction
    play: QAction
    back: QAction
    forward: QAction
    next_detection: QAction
    scan: QAction
    loop: QAction
    overlay: QAction
    hud: QAction
    alert: QAction
    fullscreen: QAction
    sync: QAction
    record: QAction
    shortcuts: QAction
    about: QAction

    def sync_checks(self, **checked: bool) -> None:
        """Menu check marks follow the state, however it was changed (button, key, settings)."""
        for name, on in checked.items():
            act = getattr(self, name)
            if act.isChecked() != on:
                act.setChecked(on)


def _act(
    win: QMainWindow,
    menu: QMenu,
    text: str,
    keys: str | QKeySequence.StandardKey | None = None,
    checkable: bool = False,
    extra: tuple[str, ...] = (),
) -> QAction:
    a = QAction(text, win)
    seqs = [QKeySequence(keys)] if keys is not None else []
    seqs += [QKeySequence(k) for k in extra]
    if seqs:
        a.setShortcuts(seqs)
    a.setCheckable(checkable)
    menu.addAction(a)
    win.addAction(a)  # keeps the shortcut alive when the menu bar is hidden (fullscreen)
    return a


def build_actions(win: QMainWindow) -> Actions:
    mb = win.menuBar()
    f = mb.addMenu("&File")
    open_file = _act(win, f, "Open video\u2026", "Ctrl+O")
    open_folder = _act(win, f, "Open folder of frames\u2026", "Ctrl+Shift+O")
    open_device = _act(win, f, "Connect capture device\u2026", "Ctrl+D")
    open_stream = _act(win, f, "Open stream URL\u2026", "Ctrl+U")
    recent = f.addMenu("Recent sources")
    reopen = _act(win, f, "Reopen source", "Ctrl+R")
    reopen.setToolTip("Open the current source again (after its capture failed)")
    f.addSeparator()
    export = _act(win, f, "Export annotated clip\u2026", "Ctrl+E")
    output_dir = _act(win, f, "Output folder\u2026")
    snapshot = _act(win, f, "Snapshot", "S")
    f.addSeparator()
    quit_ = _act(win, f, "Quit", "Ctrl+Q")
    p = mb.addMenu("&Playback")
    play = _act(win, p, "Play / pause", "Space")
    back = _act(win, p, "Step back", "Left")
    forward = _act(win, p, "Step forward", "Right")
    next_detection = _act(win, p, "Next detection", "N")
    scan = _act(win, p, "Scan whole clip for detections", "T")
    loop = _act(win, p, "Loop", checkable=True)
    v = mb.addMenu("&View")
    overlay = _act(win, v, "Overlay", "O", checkable=True)
    hud = _act(win, v, "Stats on video", "H", checkable=True)
    alert = _act(win, v, "Alert when a polyp appears", checkable=True)
    fullscreen = _act(win, v, "Fullscreen", "F", checkable=True, extra=("F11",))
    sync = _act(win, v, "Synchronous overlay (review frame by frame)", "Y", checkable=True)
    r = mb.addMenu("&Record")
    record = _act(win, r, "Record", "R", checkable=True)
    h = mb.addMenu("&Help")
    shortcuts = _act(win, h, "Keyboard shortcuts")
    about = _act(win, h, "About PolypVision")
    shortcuts.triggered.connect(
        lambda: QMessageBox.information(win, "Keyboard shortcuts", SHORTCUTS)
    )
    about.triggered.connect(lambda: QMessageBox.about(win, "About PolypVision", _about_text()))
    return Actions(
        open_file,
        open_folder,
        open_device,
        open_stream,
        recent,
        reopen,
        export,
        output_dir,
        snapshot,
        quit_,
        play,
        back,
        forward,
        next_detection,
        scan,
        loop,
        overlay,
        hud,
        alert,
        fullscreen,
        sync,
        record,
        shortcuts,
        about,
    )


def _about_text() -> str:
    from polypvision import __version__

    return (
        f"PolypVision {__version__}\nReal-time polyp segmentation on colonoscopy video.\n"
        "Research software, not a medical device."
    )
