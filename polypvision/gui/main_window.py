"""The main window: layout and wiring only.

The session's state (what plays, the model, the source waiting for one, recording, export,
scan, a lost live signal) is :class:`~polypvision.viewer.controller.SessionController`, which
runs without Qt; this window builds the widgets, forwards commands to it and shows what it
reports. Sources open and models load on worker threads (``run_async``), each picture the
pipeline hands over is shown as it arrives (``frame_ready``) and a timer refreshes the figures,
so a slow model or a stalled device never freezes the window or slows the video down.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QMainWindow, QMessageBox, QVBoxLayout, QWidget

from polypvision.errors import describe_error
from polypvision.gui.actions import build_actions
from polypvision.gui.bridge import Bridge, run_async
from polypvision.gui.display import Display
from polypvision.gui.export_dialog import ExportDialog
from polypvision.gui.record_bar import RecordBar
from polypvision.gui.settings import AppSettings
from polypvision.gui.side_panel import SidePanel
from polypvision.gui.source_dialogs import SourceChooser
from polypvision.gui.transport import TransportBar
from polypvision.gui.video_view import VideoView
from polypvision.model.session import Segmenter
from polypvision.sources import source_kind
from polypvision.sources.base import FrameSource
from polypvision.viewer.controller import SessionController, SessionEvents
from polypvision.viewer.labels import source_title
from polypvision.viewer.overlay_settings import OverlaySettings
from polypvision.viewer.player import Player
from polypvision.viewer.source_choices import granted_text, push_recent

log = logging.getLogger(__name__)

TICK_HZ = 20  # figures, position and banner; pictures are shown as they arrive, not on this timer


class WindowEvents(SessionEvents):
    """What the session reports, shown in the window (worker-thread calls go through the bridge)."""

    def __init__(self, win: MainWindow) -> None:
        self.win = win

    def message(self, text: str, timeout_ms: int = 0) -> None:
        self.win.statusBar().showMessage(text, timeout_ms)

    def error(self, text: str) -> None:
        self.win.show_error(text)

    def placeholder(self, text: str, *, clear: bool = False) -> None:
        if clear:
            self.win.view.clear(text)
        else:
            self.win.view.set_placeholder(text)

    def source_opened(self, spec: str, source: FrameSource) -> None:
        w, info = self.win, source.info
        assert info is not None
        w.settings.recent = push_recent(w.settings.recent, spec)
        granted = granted_text(info.extra)
        if granted and source_kind(spec) in ("device", "synthetic"):
            w.settings.remember_granted(spec, granted)
        w.side.show_source(info)

    def player_ready(self, player: Player) -> None:
        self.win.player_ready(player)

    def model_loading(self, path: Path | None, provider: str) -> None:
        self.win.settings.set("model/provider", provider)
        if path is not None:
            self.win.model_panel.show_loading(path)

    def model_shown(self, segmenter: Segmenter | None, provider: str) -> None:
        self.win.model_panel.show_loaded(segmenter, provider)

    def model_loaded(self, segmenter: Segmenter, remembered: bool) -> OverlaySettings:
        w = self.win
        # Only a model the user picked is remembered; the shipped default may change with an update.
        w.settings.set("model/path", str(segmenter.path) if remembered else "")
        w.overlay_panel.set_model_threshold(segmenter.contract.output.threshold)
        return w.overlay_panel.settings

    def signal(self, lost: bool, description: str) -> None:
        w = self.win
        if lost:
            w.view.set_banner("SIGNAL LOST \u2014 reconnecting\u2026")
            w.statusBar().showMessage(f"{description}: signal lost; reconnecting\u2026", 0)
        else:
            w.view.set_banner("")
            w.statusBar().showMessage(f"{description}: signal back", 5000)

    def source_failed(self, description: str, reason: str) -> None:
        w = self.win
        w.view.set_banner("SOURCE FAILED \u2014 Ctrl+R reopens it")
        w.statusBar().showMessage(
            f"\u26a0 {description} stopped: {reason}; "
            "File \u25b8 Reopen source (Ctrl+R) opens it again",
            0,
        )

    def recovered(self, text: str) -> None:
        """A dialog that stays until read (not modal: the video goes on)."""
        w = self.win
        log.warning("%s", text)
        w.statusBar().showMessage(text, 15000)
        w.notice = QMessageBox(
            QMessageBox.Icon.Information,
            "Recording recovered",
            f"A session that ended unexpectedly left a recording behind:\n\n{text}",
            QMessageBox.StandardButton.Ok,
            w,
        )
        w.notice.open()

    def frame_ready(self) -> None:
        self.win.bridge.frame_ready.emit()

    def worker_error(self, exc: BaseException) -> None:
        self.win.bridge.error.emit(describe_error(exc))

    def player_ended(self) -> None:
        self.win.bridge.ended.emit()


class MainWindow(QMainWindow):
    def __init__(self, settings: AppSettings | None = None, provider: str = "auto") -> None:
        super().__init__()
        self.setWindowTitle("PolypVision")
        self.settings = settings or AppSettings()
        self.bridge = Bridge(self)
        self.session = SessionController(
            WindowEvents(self),
            provider=provider,
            overlay=self.settings.overlay(),
            loop=self.settings.get_bool("playback/loop", False),
            synchronous=self.settings.get_bool("view/sync", False),
            output_dir=self.settings.output_dir,
            run=lambda name, fn, done, failed: run_async(self.bridge, name, fn, done, failed),
        )
        self._export: ExportDialog | None = None
        self.notice: QMessageBox | None = None  # a recovered recording, shown until read
        self.bridge.error.connect(self.show_error)
        self.bridge.frame_ready.connect(self._show_frame)
        self.bridge.ended.connect(self.session.ended)
        self.bridge.progress.connect(
            lambda pr: self.statusBar().showMessage(
                f"Scanning the clip for detections: {pr.done}/{pr.total or '?'} frames", 2000
            )
        )
        self._build()
        self._wire()
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.timer.start(1000 // TICK_HZ)
        self.session.sweep_outputs()  # a recording a killed session left behind is recovered now

    # -- the session's state, for the widgets (and tests) ------------------------------------------
    @property
    def player(self) -> Player | None:
        return self.session.player

    @property
    def segmenter(self) -> Segmenter | None:
        return self.session.segmenter

    @segmenter.setter
    def segmenter(self, value: Segmenter | None) -> None:
        self.session.segmenter = value

    @property
    def provider(self) -> str:
        return self.session.provider

    @property
    def overlay_settings(self) -> OverlaySettings:
        return self.session.overlay

    @property
    def _pending(self) -> tuple[str, FrameSource] | None:
        return self.session.pending

    # -- layout ---------------------------------------------------------------------------------
    def _build(self) -> None:
        self.view = VideoView()
        self.view.show_hud = self.settings.get_bool("view/hud", True)
        self.transport = TransportBar()
        self.record_bar = RecordBar()
        self.side = SidePanel()
        self.model_panel, self.overlay_panel = self.side.model, self.side.overlay
        self.model_panel.set_provider(self.provider)
        self.overlay_panel.set_settings(self.overlay_settings)
        self.overlay_panel.alert_box.setChecked(self.settings.get_bool("alert/enabled", False))
        self.transport.loop_box.setChecked(self.session.loop)

        left = QWidget()
        left_lay = QVBoxLayout(left)
        left_lay.setContentsMargins(0, 0, 0, 0)
        left_lay.setSpacing(2)
        left_lay.addWidget(self.view, 1)
        left_lay.addWidget(self.transport)
        left_lay.addWidget(self.record_bar)
        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(4, 4, 4, 4)
        row.addWidget(left, 1)
        row.addWidget(self.side)
        self.setCentralWidget(central)
        self.display = Display(self.view, self.transport, self.record_bar)
        self.display.alert_enabled = self.overlay_panel.alert_box.isChecked()
        self.actions_ = build_actions(self)
        self.actions_.sync.setChecked(self.session.synchronous)
        self.chooser = SourceChooser(self, self.settings, self.open_source)
        geo = self.settings.geometry()
        if geo is None or not self.restoreGeometry(geo):
            avail = self.screen().availableGeometry()  # fit small screens (and Xvfb) on first run
            self.resize(min(1280, int(avail.width() * 0.95)), min(800, int(avail.height() * 0.95)))

    def _wire(self) -> None:
        a, t, s = self.actions_, self.transport, self.session
        a.open_file.triggered.connect(self.chooser.open_file)
        a.open_folder.triggered.connect(self.chooser.open_folder)
        a.open_device.triggered.connect(self.chooser.open_device)
        a.open_stream.triggered.connect(self.chooser.open_stream)
        a.recent.aboutToShow.connect(lambda: self.chooser.fill_recent(a.recent))
        a.reopen.triggered.connect(s.reopen)
        a.export.triggered.connect(self.export_clip)
        a.output_dir.triggered.connect(self.chooser.choose_output_dir)
        a.snapshot.triggered.connect(self.snapshot)
        a.quit.triggered.connect(self.close)
        a.play.triggered.connect(self.toggle_play)
        a.back.triggered.connect(lambda: self.step(-1))
        a.forward.triggered.connect(lambda: self.step(1))
        a.next_detection.triggered.connect(self.next_detection)
        a.scan.triggered.connect(self.scan_clip)
        a.loop.triggered.connect(t.loop_box.setChecked)
        a.overlay.triggered.connect(lambda: self.overlay_panel.toggle_enabled())
        a.hud.triggered.connect(self._set_hud)
        a.alert.triggered.connect(self.overlay_panel.alert_box.setChecked)
        a.fullscreen.triggered.connect(self.toggle_fullscreen)
        a.sync.triggered.connect(self.set_synchronous)
        a.record.triggered.connect(self.toggle_record)
        self.view.dropped.connect(self.open_source)
        self.view.resized.connect(self._update_area)
        t.play_pause.connect(self.toggle_play)
        t.step.connect(self.step)
        t.seek.connect(self.seek)
        t.loop_changed.connect(self._set_loop)
        self.record_bar.record_clicked.connect(self.toggle_record)
        self.record_bar.snapshot_clicked.connect(self.snapshot)
        self.overlay_panel.changed.connect(self._overlay_changed)
        self.overlay_panel.alert_changed.connect(self._set_alert)
        self.model_panel.model_chosen.connect(lambda p: self.load_model(p, self.provider))
        self.model_panel.provider_chosen.connect(s.choose_provider)

    # -- commands, forwarded to the session --------------------------------------------------------
    def open_source(self, spec: str, source: FrameSource | None = None, **kwargs) -> None:
        """Open on a worker thread (a stream can take seconds); keep playing the old one until then.

        ``source`` plays an already built (unopened) FrameSource under the name ``spec``, e.g. a
        simulated capture card with an outage; otherwise ``spec`` is made into one.
        """
        self.session.open(spec, source, **kwargs)

    def load_model(self, path: Path | None, provider: str) -> None:
        """Load on a worker thread; the running model keeps going until the new one is ready."""
        self.session.load_model(path, provider)

    def toggle_play(self) -> None:
        self.session.toggle_play()

    def step(self, delta: int) -> None:
        self.session.step(delta)

    def seek(self, index: int) -> None:
        self.session.seek(index)

    def next_detection(self) -> None:
        self.session.next_detection()

    def toggle_record(self) -> None:
        self.session.toggle_record()

    def snapshot(self) -> Path | None:
        return self.session.snapshot()

    def sweep_outputs(self) -> list[str]:
        return self.session.sweep_outputs()

    def scan_clip(self) -> None:
        self.session.toggle_scan(
            self.bridge.progress.emit,
            lambda err: self.bridge.done.emit(self.session.scan_finished, err),
        )

    def export_clip(self) -> ExportDialog | None:
        chosen = self.session.export_source()
        if chosen is None:
            return None
        spec, default_out = chosen
        dlg = ExportDialog(spec, default_out, self.session, self)
        dlg.finished.connect(lambda _: self._export_finished(dlg))
        self._export = dlg
        dlg.open()
        return dlg

    def _export_finished(self, dlg: ExportDialog) -> None:
        if dlg.result_text:
            self.statusBar().showMessage(dlg.result_text, 10000)

    def set_synchronous(self, on: bool) -> None:
        """Each frame with its own mask (review), or the video passed through (live use)."""
        self.settings.set("view/sync", on)
        self.session.set_synchronous(on)

    def _set_loop(self, on: bool) -> None:
        self.settings.set("playback/loop", on)
        self.session.set_loop(on)

    def _overlay_changed(self, s: OverlaySettings) -> None:
        self.settings.save_overlay(s)
        self.session.apply_overlay(s)

    def _set_alert(self, on: bool) -> None:
        self.display.alert_enabled = on
        self.settings.set("alert/enabled", on)

    def _set_hud(self, on: bool) -> None:
        self.view.show_hud = on
        self.settings.set("view/hud", on)
        self.view.update()

    # -- what the session reports ------------------------------------------------------------------
    def player_ready(self, player: Player) -> None:
        """A new player is about to start: the controls follow its source."""
        info = player.info
        player.runner.display_area = self.view.area()
        self.transport.set_source(info.frame_count, info.seekable, info.fps, player.track)
        self.actions_.export.setEnabled(not info.live)
        self.view.clear("")
        self.display.reset()
        self.setWindowTitle(f"PolypVision \u2014 {source_title(player.spec)}")

    def show_error(self, message: str) -> None:
        log.warning("%s", message)
        self.statusBar().showMessage(f"\u26a0 {message}", 15000)

    # -- display -----------------------------------------------------------------------------------
    def _show_frame(self) -> None:
        if self.player is not None:
            self.display.show_newest(self.player)

    def _update_area(self) -> None:
        """Pictures are drawn at the size they are shown at, not at the source's."""
        if self.player is not None:
            self.player.runner.display_area = self.view.area()

    def _tick(self) -> None:
        self.session.poll()
        p = self.player
        if p is not None and self.display.tick(p):
            self.actions_.sync_checks(
                record=p.recording,
                overlay=self.overlay_settings.enabled,
                hud=self.view.show_hud,
                alert=self.display.alert_enabled,
                loop=p.runner.loop,
                fullscreen=self.isFullScreen(),
                sync=p.runner.mode == "sync",
            )

    # -- misc ---------------------------------------------------------------------------------
    def toggle_fullscreen(self) -> None:
        full = not self.isFullScreen()
        for w in (self.side, self.menuBar(), self.statusBar(), self.record_bar):
            w.setVisible(not full)
        self.showFullScreen() if full else self.showNormal()

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.key() == Qt.Key.Key_Escape and self.isFullScreen():
            self.toggle_fullscreen()
            return
        super().keyPressEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Stop every thread (cancelling an export,
        finishing any recording) and save the settings."""
        self.timer.stop()
        self.session.close()
        self.settings.set("window/geometry", self.saveGeometry())
        self.settings.save_overlay(self.overlay_settings)
        self.settings.sync()
        super().closeEvent(event)
