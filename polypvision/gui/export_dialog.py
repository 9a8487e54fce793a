"""'Export annotated clip...': choose the outputs, then follow the export's progress;
Cancel really cancels.

The export itself (a clone of the playing stream on its own worker, its log's sidecar, the
report) is :mod:`polypvision.viewer.export`, started through the session controller. An output
that already exists is replaced only after the user says so; an export that lacks frames the
input announced (a damaged file) says how many, in the dialog and the status bar.
"""

from __future__ import annotations

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

from polypvision.errors import describe_error
from polypvision.gui.bridge import Bridge
from polypvision.pipeline.engine import Cancelled, Progress
from polypvision.viewer.controller import SessionController
from polypvision.viewer.export import ExportJob, plan_export


class ExportDialog(QDialog):
    """Pick the output, run the export, show progress; Cancel really cancels."""

    def __init__(
        self,
        spec: str,
        default_out: Path,
        session: SessionController,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export annotated clip")
        self.setMinimumWidth(520)
        self.spec, self.session = spec, session
        self.job: ExportJob | None = None
        self.bridge = Bridge(self)
        self.bridge.progress.connect(self._on_progress)
        self.bridge.ended.connect(self._on_ended)
        self.path_edit = QLineEdit(str(default_out))
        browse = QPushButton("Browse\u2026")
        browse.clicked.connect(self._browse)
        self.log_box = QCheckBox("Also write the per-frame detection log (JSON lines)")
        self.report_box = QCheckBox(
            "Also write the procedure's report (HTML; with the detection log)"
        )
        self.report_box.toggled.connect(lambda on: on and self.log_box.setChecked(True))
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
        lay.addWidget(self.report_box)
        lay.addWidget(self.bar)
        lay.addWidget(self.status)
        lay.addWidget(self.buttons)
        self.result_text = ""
        self._confirmed: Path | None = None  # a name the file dialog already asked to replace

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export annotated clip", self.path_edit.text(), "MP4 video (*.mp4)"
        )
        if path:
            self.path_edit.setText(path)
            self._confirmed = Path(path)  # the file dialog asked before returning an existing name

    def _may_replace(self, paths: list[Path]) -> bool:
        """True when none of ``paths`` exists, or the user agrees to replace them."""
        existing = [p for p in paths if p.exists() and p != self._confirmed]
        if not existing:
            return True
        names = "\n".join(str(p) for p in existing)
        answer = QMessageBox.question(
            self,
            "Replace existing files?",
            f"These files already exist and would be replaced:\n{names}",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def start(self) -> None:
        if self.running:
            return
        try:
            plan = plan_export(
                self.spec,
                Path(self.path_edit.text()),
                log=self.log_box.isChecked(),
                report=self.report_box.isChecked(),
            )
        except Exception as exc:  # a bad path: say so and let the user fix it
            self.status.setText(describe_error(exc))
            return
        if not self._may_replace(plan.outputs):
            self.status.setText("Not replaced; choose another name")
            return
        self.job = self.session.start_export(
            self.spec, plan, on_progress=self.bridge.progress.emit, on_exit=self.bridge.ended.emit
        )
        if self.job is None:
            self.status.setText("Another export is running; wait for it or cancel it")
            return
        self.start_btn.setEnabled(False)
        self.path_edit.setEnabled(False)
        self.status.setText(f"Exporting to {plan.video}\u2026")
        self.bar.setRange(0, 0)  # busy until the first progress report knows the total

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
        self.status.setText(
            f"{p.done}{'/' + str(p.total) if p.total else ''} frames, {p.fps:.1f} fps{eta}"
        )

    def _on_ended(self) -> None:
        job = self.job
        if job is None:
            return
        job.thread.join(1.0)
        self.cancel_btn.setEnabled(True)
        if job.report is not None:
            r = job.report
            self.result_text = (
                f"Exported {r.frames} frames to {r.outputs.get('video')} "
                f"({r.fps:.1f} fps, polyp in {r.frames_with_polyp} frames)"
            )
            if not r.complete:
                of = f" of {r.expected}" if r.expected else ""
                self.result_text = (
                    f"\u26a0 Partial export: {r.frames}{of} frames to {r.outputs.get('video')}; "
                    f"{r.unreadable} could not be decoded (the input is damaged)"
                )
            if job.report_page is not None:
                self.result_text += f"; report: {job.report_page}"
            elif job.error is not None:  # the clip and its log are written; the page is not
                self.result_text += (
                    f"; the report could not be written: {describe_error(job.error)}"
                )
            self.bar.setRange(0, 1)
            self.bar.setValue(1)
            self.status.setText(self.result_text)
            super().accept()
            return
        err = job.error
        self.result_text = (
            "Export cancelled; no file was written"
            if isinstance(err, Cancelled)
            else f"Export failed: {describe_error(err) if err else 'unknown error'}"
        )
        self.status.setText(self.result_text)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.start_btn.setEnabled(True)
        self.path_edit.setEnabled(True)
        if isinstance(err, Cancelled):
            super().reject()

    def wait(self, timeout_s: float = 2.0) -> None:
        """Cancel a running export and give the worker a moment."""
        if self.job is not None:
            self.job.wait(timeout_s)
