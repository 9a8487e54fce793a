"""The main window: layout and wiring only.

Work happens elsewhere: sources open and models load on worker threads (``run_async``), the
pipeline runs in :class:`~polypvision.gui.player.Player`, each picture it hands over is shown
as it arrives (``frame_ready``) and a timer refreshes the figures, so a slow model or a
stalled device never freezes the window or slows the video down.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QHBoxLayout,
    QMainWindow,
    QVBoxLayout,
    QWidget,
)

from polypvision.gui.actions import build_actions
from polypvision.gui.bridge import Bridge, describe_error
from polypvision.gui.display import Display
from polypvision.gui.loader import Loader, load_blocking, open_blocking
from polypvision.gui.outputs import OutputCommands
from polypvision.gui.player import OverlaySettings, Player
from polypvision.gui.record_bar import RecordBar
from polypvision.gui.settings import AppSettings
from polypvision.gui.side_panel import SidePanel
from polypvision.gui.source_dialogs import SourceChooser, granted_text, push_recent
from polypvision.gui.transport import TransportBar
from polypvision.gui.video_view import VideoView
from polypvision.pipeline.processor import FrameProcessor
from polypvision.pipeline.stats import format_stats
from polypvision.sources import source_kind
from polypvision.sources.base import FrameSource

log = logging.getLogger(__name__)

TICK_HZ = 20  # figures, position and banner; pictures are shown as they arrive, not on this timer


class MainWindow(OutputCommands, QMainWindow):
    def __init__(self, settings: AppSettings | None = None, provider: str = "auto") -> None:
        super().__init__()
        self.setWindowTitle("PolypVision")
        self.settings = settings or AppSettings()
        self.provider = provider
        self.player: Player | None = None
        self.segmenter = None
        self._pending: tuple[str, FrameSource] | None = None  # an opened source waiting for a model
        self._no_model_text = ""
        self._model_choice: Path | None = None
        self._closed = False
        self.overlay_settings: OverlaySettings = self.settings.overlay()
        self.bridge = Bridge(self)
        self.bridge.error.connect(self.show_error)
        self.bridge.frame_ready.connect(self._show_frame)
        self.bridge.ended.connect(self._on_end)
        self.bridge.progress.connect(lambda pr: self.statusBar().showMessage(
            f"Scanning the clip for detections: {pr.done}/{pr.total or '?'} frames", 2000))
        self.loader = Loader(self.bridge)
        self._build()
        self._wire()
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.timer.start(1000 // TICK_HZ)
        self.sweep_outputs()  # a recording a killed session left behind is recovered now

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
        self.transport.loop_box.setChecked(self.settings.get_bool("playback/loop", False))

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
        self.display = Display(self.view, self.transport, self.record_bar, self.statusBar().showMessage)
        self.display.alert_enabled = self.overlay_panel.alert_box.isChecked()
        self.actions_ = build_actions(self)
        self.actions_.sync.setChecked(self.settings.get_bool("view/sync", False))
        self.chooser = SourceChooser(self, self.settings, self.open_source)
        geo = self.settings.geometry()
        if geo is None or not self.restoreGeometry(geo):
            avail = self.screen().availableGeometry()  # fit small screens (and Xvfb) on first run
            self.resize(min(1280, int(avail.width() * 0.95)), min(800, int(avail.height() * 0.95)))

    def _wire(self) -> None:
        a, t = self.actions_, self.transport
        a.open_file.triggered.connect(self.chooser.open_file)
        a.open_folder.triggered.connect(self.chooser.open_folder)
        a.open_device.triggered.connect(self.chooser.open_device)
        a.open_stream.triggered.connect(self.chooser.open_stream)
        a.recent.aboutToShow.connect(lambda: self.chooser.fill_recent(a.recent))
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
        self.model_panel.provider_chosen.connect(self._provider_chosen)

    # -- opening sources and models (worker threads) -----------------------------------------------
    def open_source(self, spec: str, source: FrameSource | None = None, **kwargs) -> None:
        """Open on a worker thread (a stream can take seconds); keep playing the old one until then.

        ``source`` plays an already built (unopened) FrameSource under the name ``spec``, e.g. a
        simulated capture card with an outage; otherwise ``spec`` is made into one.
        """
        spec = str(spec)
        self.statusBar().showMessage(f"Opening {spec}\u2026")
        if self.player is None:
            self.view.set_placeholder(f"Opening {spec}\u2026")
        self.loader.submit("source", lambda: open_blocking(spec, source, **kwargs),
                           lambda src: self._source_opened(spec, src), lambda exc: self._open_failed(spec, exc),
                           on_stale=lambda src: src.close())

    def _open_failed(self, spec: str, exc: BaseException) -> None:
        self.show_error(describe_error(exc))
        if self.player is None:
            self.view.clear(f"Could not open {spec}\n\n{describe_error(exc)}\n\nDrop a video here or use File \u25b8 Open.")

    def _source_opened(self, spec: str, source: FrameSource) -> None:
        if self._closed:  # a slow stream answered after the window was closed
            source.close()
            return
        if self._pending is not None:
            self._pending[1].close()
        self._pending = (spec, source)
        self.settings.recent = push_recent(self.settings.recent, spec)
        info = source.info
        granted = granted_text(info.extra)
        if granted and source_kind(spec) in ("device", "synthetic"):
            self.settings.remember_granted(spec, granted)
        self.side.show_source(info)
        for w in source.warnings:
            self.statusBar().showMessage(w, 8000)
        if self.segmenter is None:
            self.view.set_placeholder(self._no_model_text or "Loading the model\u2026")
            return
        self._start_pending()

    def _start_pending(self) -> None:
        spec, source = self._pending
        self._pending = None
        self._stop_player()
        processor = FrameProcessor(self.segmenter, settings=self.overlay_settings.stream_settings(self.segmenter))
        self.player = Player(spec, source, processor, loop=self.transport.loop_box.isChecked(),
                             mode="sync" if self.actions_.sync.isChecked() else "pass-through",
                             on_frame=self.bridge.frame_ready.emit,
                             on_error=lambda exc: self.bridge.error.emit(describe_error(exc)),
                             on_end=self.bridge.ended.emit)
        self._update_area()
        info = source.info
        self.transport.set_source(info.frame_count, info.seekable, info.fps, self.player.track)
        self.actions_.export.setEnabled(not info.live)
        self.view.clear("")
        self.display.reset()
        self.player.start()
        kind = source_kind(spec)
        name = Path(spec).name if kind in ("file", "frames") else "demo" if kind == "demo" else spec
        self.setWindowTitle(f"PolypVision \u2014 {name}")
        self.statusBar().showMessage(f"Playing {info.description}", 4000)

    def load_model(self, path: Path | None, provider: str) -> None:
        """Load on a worker thread; the running model keeps going until the new one is ready."""
        self.provider = provider
        self.settings.set("model/provider", provider)
        if path is not None:
            self.model_panel.show_loading(Path(path))
        # Only a model the user picked is remembered; the shipped default may change with an update.
        self._model_choice = path
        self.loader.submit("model", lambda: load_blocking(path, provider),
                           lambda seg: self._model_loaded(seg, path is not None), self._model_failed)

    def _model_failed(self, exc: BaseException) -> None:
        """Keep the running model; with none, say why in the view itself."""
        msg = describe_error(exc)
        self.show_error(msg)
        self.model_panel.show_loaded(self.segmenter, self.provider)
        if self.segmenter is None:
            self._no_model_text = f"No model loaded\n\n{msg}\n\nChoose one with \u201cOther\u2026\u201d in the Model panel."
            self.view.clear(self._no_model_text)

    def _model_loaded(self, seg, remember: bool = True) -> None:
        if self._closed:
            return
        self.segmenter = seg
        self._no_model_text = ""
        self.settings.set("model/path", str(seg.path) if remember else "")
        self.model_panel.show_loaded(seg, self.provider)
        self.overlay_panel.set_model_threshold(seg.contract.output.threshold)
        self.overlay_settings = self.overlay_panel.settings
        self.statusBar().showMessage(f"Model {seg.contract.name} on {seg.report}", 6000)
        if self._pending is not None:
            self._start_pending()
        elif self.player is not None:
            self.player.swap_processor(FrameProcessor(seg, settings=self.overlay_settings.stream_settings(seg)))
            self.player.refresh()

    def _provider_chosen(self, provider: str) -> None:
        self.load_model(self._model_choice, provider)

    # -- transport -------------------------------------------------------------------------------
    def toggle_play(self) -> None:
        if self.player is not None:
            self.player.toggle_pause()

    def step(self, delta: int) -> None:
        if self.player is not None and self.player.seekable:
            self.player.runner.step(delta)

    def seek(self, index: int) -> None:
        if self.player is not None and self.player.seekable:
            self.player.runner.seek(index)

    def next_detection(self) -> None:
        p = self.player
        if p is not None and p.track is not None:
            nxt = p.track.next_polyp(p.runner.position)
            if nxt is None:
                self.statusBar().showMessage("No later detection seen yet (the timeline fills as the clip plays)", 4000)
            else:
                p.runner.pause()
                p.runner.seek(nxt)

    def _set_loop(self, on: bool) -> None:
        self.settings.set("playback/loop", on)
        if self.player is not None:
            self.player.runner.loop = on

    def _on_end(self) -> None:
        if self.player is not None and not self.player.runner.loop:
            self.statusBar().showMessage("End of clip; press Space to play again", 5000)

    # -- overlay, record, snapshot, export --------------------------------------------------------------
    def _overlay_changed(self, s: OverlaySettings) -> None:
        self.overlay_settings = s
        self.settings.save_overlay(s)
        if self.player is not None:
            self.player.apply(s.stream_settings(self.player.processor.segmenter, self.player.processor.settings))
            self.player.refresh()

    def _set_alert(self, on: bool) -> None:
        self.display.alert_enabled = on
        self.settings.set("alert/enabled", on)

    def _set_hud(self, on: bool) -> None:
        self.view.show_hud = on
        self.settings.set("view/hud", on)
        self.view.update()

    # -- display ------------------------------------------------------------------------------------
    def _show_frame(self) -> None:
        if self.player is not None:
            self.display.show_newest(self.player)

    def _update_area(self) -> None:
        """Pictures are drawn at the size they are shown at, not at the source's."""
        if self.player is not None:
            self.player.runner.display_area = self.view.area()

    def set_synchronous(self, on: bool) -> None:
        """Each frame with its own mask (review), or the video passed through (live use)."""
        self.settings.set("view/sync", on)
        if self.player is not None:
            self.player.runner.mode = "sync" if on else "pass-through"

    def _tick(self) -> None:
        p = self.player
        if p is not None:
            self.check_recording()
        if p is not None and self.display.tick(p):
            self.actions_.sync_checks(record=p.recording, overlay=self.overlay_settings.enabled, hud=self.view.show_hud,
                                      alert=self.display.alert_enabled, loop=p.runner.loop,
                                      fullscreen=self.isFullScreen(), sync=p.runner.mode == "sync")

    # -- misc ---------------------------------------------------------------------------------
    def show_error(self, message: str) -> None:
        log.warning("%s", message)
        self.statusBar().showMessage(f"\u26a0 {message}", 15000)

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

    def _stop_player(self) -> None:
        p, self.player = self.player, None
        if p is None:
            return
        # The figures the user last saw, for the log (``polypvision -v gui``): how the
        # app's speed is measured for the record, outside the window.
        log.info("stats for %s: %s", p.spec, " | ".join(format_stats(p.stats())))
        try:
            saved = p.stop()
            if saved is not None:
                log.info("recording saved: %s", saved)
                self.statusBar().showMessage(f"Recording saved: {saved}", 10000)
        except Exception as exc:  # the recording failed; say so, keep going
            self.show_error(describe_error(exc))

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Stop every thread (finishing any recording) and save the settings."""
        self._closed = True
        self.timer.stop()
        dlg = getattr(self, "_export", None)
        if dlg is not None:
            dlg.wait(1.0)
        self._stop_player()
        if self._pending is not None:
            self._pending[1].close()
            self._pending = None
        self.settings.set("window/geometry", self.saveGeometry())
        self.settings.save_overlay(self.overlay_settings)
        self.settings.sync()
        super().closeEvent(event)
