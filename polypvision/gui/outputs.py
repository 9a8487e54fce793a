"""The window's output commands: record, snapshot, export and the clip scan.

A mixin of :class:`~polypvision.gui.main_window.MainWindow` (it uses the window's player,
settings, bridge and status bar), kept apart so the window class stays about layout and wiring.
Every command is attempted: a full disk or a bad folder is a status-bar message, not a crash.
"""

from __future__ import annotations

import time
from pathlib import Path

from polypvision.gui.bridge import Bridge, describe_error
from polypvision.gui.export_dialog import ExportDialog
from polypvision.gui.player import Player
from polypvision.gui.settings import AppSettings
from polypvision.pipeline.engine import Cancelled
from polypvision.sources import source_kind


class OutputCommands:
    """Record (R), snapshot (S), export (Ctrl+E) and scan (T), for MainWindow."""

    # Provided by MainWindow (with statusBar() and show_error()).
    player: Player | None
    settings: AppSettings
    bridge: Bridge

    def _out_path(self, suffix: str) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"
        return self.settings.output_dir() / f"polypvision-{stamp}{suffix}"

    def _attempt(self, fn, done: str = "{}"):
        """Run a user command; a full disk or a bad folder is a status-bar message, not a crash."""
        try:
            value = fn()
        except Exception as exc:
            self.show_error(describe_error(exc))
            return None
        self.statusBar().showMessage(done.format(value), 8000)
        return value

    def sweep_outputs(self) -> list[str]:
        """Recover what a killed session left in the output folder (a recording plays up to its
        last complete fragment) and remove the rest; say so in the status bar."""
        from polypvision.partials import sweep

        done = sweep(self.settings.output_dir())
        if done:
            self.statusBar().showMessage("; ".join(done), 15000)
        return done

    def toggle_record(self) -> None:
        p = self.player
        if p is None:
            self.show_error("nothing to record yet; open a source first")
        elif p.recording:
            self._attempt(p.stop_recording, "Recording saved: {}")
        else:
            self.sweep_outputs()
            self._attempt(lambda: p.start_recording(self._out_path(".mp4")), "Recording to {}")

    def check_recording(self) -> None:
        """A recording whose writes fail (a full disk) stops at once, keeping what it holds."""
        p = self.player
        rec = p.recorder if p is not None else None
        if rec is not None and rec.error is not None:
            self._attempt(p.stop_recording, "Recording saved: {}")

    def snapshot(self) -> Path | None:
        if self.player is None:
            self.show_error("nothing to snapshot yet; open a source first")
            return None
        return self._attempt(lambda: self.player.snapshot(self._out_path(".png")), "Snapshot saved: {}")

    def export_clip(self) -> ExportDialog | None:
        p = self.player
        if p is None or p.info.live:
            self.show_error("export needs a video file or a folder of frames; live sources can be recorded (R)")
            return None
        spec = str(p.source.path) if source_kind(p.spec) == "demo" else p.spec
        stem = Path(spec).stem if source_kind(spec) in ("file", "frames") else "clip"
        dlg = ExportDialog(spec, p.processor, self.settings.output_dir() / f"{stem}-annotated.mp4", p.info.fps, self)
        dlg.finished.connect(lambda _: dlg.result_text and self.statusBar().showMessage(dlg.result_text, 10000))
        self._export = dlg
        dlg.open()
        return dlg

    def scan_clip(self) -> None:
        p = self.player
        if p is None:
            self.show_error("open a video file or a folder of frames first")
            return
        started = self._attempt(lambda: p.toggle_scan(self.bridge.progress.emit,
                                                      lambda err: self.bridge.done.emit(self._scan_done, err)), "")
        if started is not None:
            self.statusBar().showMessage("Scanning the clip for detections\u2026" if started else "Scan stopped", 3000)

    def _scan_done(self, err: BaseException | None) -> None:
        p = self.player
        if err is None and p is not None and p.track is not None:
            n = sum(b - a for a, b in p.track.runs())
            self.statusBar().showMessage(f"Scan complete: a polyp in {n} of {len(p.track)} frames (N jumps to the next)", 10000)
        elif err is not None and not isinstance(err, Cancelled):
            self.show_error(f"scan failed: {describe_error(err)}")
