"""'Export annotated clip...': the offline schedule on a worker, with progress and cancel.

The export opens its own copy of the source and runs a clone of the playing stream's state
(same model and settings, its own buffers and smoother), so it neither disturbs nor is
disturbed by what is playing; the model session is shared, which it is built for. Cancel sets
an Event; the engine then aborts every sink, so a cancelled or failed export leaves no file.
An output that already exists is replaced only after the user says so; an export that lacks
frames the input announced (a damaged file) says how many, in the dialog and the status bar.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from polypvision.gui.bridge import Bridge, describe_error
from polypvision.pipeline.engine import (
    Cancelled,
    OfflineReport,
    Progress,
    Worker,
    abort_all,
    run_offline,
)
from polypvision.pipeline.processor import FrameProcessor
from polypvision.recording import DetectionLog, VideoWriter, check_output_path, sidecar_path
from polypvision.sources import input_paths, make_source

PROGRESS_EVERY_S = 0.1


class ExportJob:
    """Runs one export on a named worker; reports through the bridge's signals."""

    def __init__(self, spec: str, processor: FrameProcessor, out: Path, log_path: Path | None,
                 bridge: Bridge, fps: float = 25.0) -> None:
        self.spec, self.out, self.log_path, self.bridge, self.fps = spec, out, log_path, bridge, fps
        self.processor = processor.clone()  # same model and settings, its own buffers and smoothing
        self.cancel = threading.Event()
        self.report: OfflineReport | None = None
        self.worker = Worker("pv-export", self._run, on_exit=self.bridge.ended.emit)
        self._last = 0.0

    @property
    def error(self) -> BaseException | None:
        return self.worker.error

    @property
    def thread(self) -> threading.Thread:
        return self.worker.thread

    def start(self) -> None:
        self.worker.start()

    def _progress(self, p: Progress) -> None:
        now = time.perf_counter()
        if now - self._last >= PROGRESS_EVERY_S or (p.total and p.done >= p.total):
            self._last = now
            self.bridge.progress.emit(p)

    def _run(self) -> None:
        source = make_source(self.spec, fps=self.fps)
        sinks: list = []
        try:
            info = source.open()
            sinks.append(VideoWriter(self.out, info.width, info.height, info.fps,
                                     sar=info.extra.get("pixel_aspect")))  # type: ignore[arg-type]
            if self.log_path is not None:
                seg = self.processor.segmenter
                sinks.append(DetectionLog(self.log_path, {"input": self.spec, "provider": str(seg.report),
                                                          "model": str(seg.path)}))
            self.report = run_offline(source, self.processor, sinks, batch=4, cancel=self.cancel,
                                      progress=self._progress)
        except BaseException:  # the worker keeps it for the dialog; no temporary file stays
            abort_all(sinks)
            raise
        finally:
            source.close()


class ExportDialog(QDialog):
    """Pick the output, run the export, show progress; Cancel really cancels."""

    def __init__(self, spec: str, processor: FrameProcessor, default_out: Path, fps: float = 25.0,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export annotated clip")
        self.setMinimumWidth(520)
        self.spec, self.processor, self.fps = spec, processor, fps
        self.job: ExportJob | None = None
        self.bridge = Bridge(self)
        self.bridge.progress.connect(self._on_progress)
        self.bridge.ended.connect(self._on_ended)
        self.path_edit = QLineEdit(str(default_out))
        browse = QPushButton("Browse\u2026")
        browse.clicked.connect(self._browse)
        self.log_box = QCheckBox("Also write the per-frame detection log (JSON lines)")
        self.bar = QProgressBar()
        self.bar.setRange(0, 100)
        self.bar.setValue(0)
        self.status = QLabel(f"Source: {spec}")
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox()
        self.start_btn = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_btn = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.start_btn.clicked.connect(self.start)
        self.cancel_btn.clicked.connect(self.cancel)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Write the annotated clip (H.264 MP4) to:"))
        lay.addLayout(row)
        lay.addWidget(self.log_box)
        lay.addWidget(self.bar)
        lay.addWidget(self.status)
        lay.addWidget(self.buttons)
        self.result_text = ""
        self._confirmed: Path | None = None  # a name the file dialog already asked to replace

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export annotated clip", self.path_edit.text(), "MP4 video (*.mp4)")
        if path:
            self.path_edit.setText(path)
            self._confirmed = Path(path)  # the file dialog asked before returning an existing name

    def _may_replace(self, paths: list[Path]) -> bool:
        """True when none of ``paths`` exists, or the user agrees to replace them."""
        existing = [p for p in paths if p.exists() and p != self._confirmed]
        if not existing:
            return True
        names = "\n".join(str(p) for p in existing)
        answer = QMessageBox.question(self, "Replace existing files?",
                                      f"These files already exist and would be replaced:\n{names}",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        out = Path(self.path_edit.text()).expanduser()
        log_path = None
        try:
            if out.suffix.lower() != ".mp4":
                out = out.with_suffix(".mp4")
            inputs = input_paths(self.spec)
            check_output_path(out, inputs)
            if self.log_box.isChecked():
                log_path = out.with_suffix(".jsonl")
                check_output_path(log_path, (*inputs, out), what="log")
                check_output_path(sidecar_path(log_path), (*inputs, out, log_path), what="log sidecar")
        except Exception as exc:  # a bad path: say so and let the user fix it
            self.status.setText(describe_error(exc))
            return
        outputs = [out] + ([log_path, sidecar_path(log_path)] if log_path is not None else [])
        if not self._may_replace(outputs):
            self.status.setText("Not replaced; choose another name")
            return
        from polypvision.partials import sweep

        sweep(out.parent)  # what a killed export left there
        self.job = ExportJob(self.spec, self.processor, out, log_path, self.bridge, self.fps)
        self.start_btn.setEnabled(False)
        self.path_edit.setEnabled(False)
        self.status.setText(f"Exporting to {out}\u2026")
        self.bar.setRange(0, 0)  # busy until the first progress report knows the total
        self.job.start()

    def cancel(self) -> None:
        if self.running:
            self.job.cancel.set()
            self.status.setText("Cancelling\u2026")
            self.cancel_btn.setEnabled(False)
            return
        self.reject()

    def reject(self) -> None:  # Esc or the window's close button: cancel a running export first
        if self.running:
            self.cancel()
            return
        super().reject()

    def _on_progress(self, p: Progress) -> None:
        if p.total:
            self.bar.setRange(0, p.total)
            self.bar.setValue(min(p.done, p.total))
        eta = f", about {p.eta_s:.0f} s left" if p.eta_s is not None else ""
        self.status.setText(f"{p.done}{'/' + str(p.total) if p.total else ''} frames, {p.fps:.1f} fps{eta}")

    def _on_ended(self) -> None:
        job = self.job
        if job is None:
            return
        job.thread.join(1.0)
        self.cancel_btn.setEnabled(True)
        if job.report is not None:
            r = job.report
            self.result_text = (f"Exported {r.frames} frames to {r.outputs.get('video')} "
                                f"({r.fps:.1f} fps, polyp in {r.frames_with_polyp} frames)")
            if not r.complete:
                of = f" of {r.expected}" if r.expected else ""
                self.result_text = (f"\u26a0 Partial export: {r.frames}{of} frames to {r.outputs.get('video')}; "
                                    f"{r.unreadable} could not be decoded (the input is damaged)")
            self.bar.setRange(0, 1)
            self.bar.setValue(1)
            self.status.setText(self.result_text)
            super().accept()
            return
        err = job.error
        self.result_text = ("Export cancelled; no file was written" if isinstance(err, Cancelled)
                            else f"Export failed: {describe_error(err) if err else 'unknown error'}")
        self.status.setText(self.result_text)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.start_btn.setEnabled(True)
        self.path_edit.setEnabled(True)
        if isinstance(err, Cancelled):
            super().reject()

    def wait(self, timeout_s: float = 2.0) -> None:
        """Used when the app closes mid-export: cancel and give the worker a moment."""
        if self.job is not None:
            self.job.cancel.set()
            self.job.thread.join(timeout_s)
