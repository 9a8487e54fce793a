"""The outcome of one procedure: one row of ``summary.csv`` and one line of the index page."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Status words. "skipped" means an earlier run had completed it (checked, see outputs.py).
OK, SKIPPED, FAILED, NOT_RUN = "ok", "skipped", "failed", "not run"


@dataclass
class ProcedureResult:
    id: int
    path: str  # the source, as the summary names it
    output: str  # the outputs' stem, relative to OUTPUT_DIR
    status: str
    error: str = ""
    frames_in: int | None = None  # what the input declares (container count, image files)
    frames_out: int = 0
    unreadable_frames: int = 0
    duration_s: float = 0.0  # media time
    frames_with_polyp: int = 0
    polyp_events: int = 0
    report: str = ""  # relative to OUTPUT_DIR
    attempts: int = 1
    processing_s: float = 0.0
    provider: str = ""
    worker_rss_mb: float = 0.0  # resident memory of the worker after this procedure
    warnings: list[str] = field(default_factory=list)
    detail: str = ""  # a traceback for a failure that is a bug, shown with --verbose

    @property
    def done(self) -> bool:
        return self.status in (OK, SKIPPED)

    @property
    def fps(self) -> float:
        return (
            self.frames_out / self.processing_s
            if self.status == OK and self.processing_s > 0
            else 0.0
        )

    def row(self) -> dict[str, Any]:
        """The summary.csv row: the issue's columns first, then the ones that help find things."""
        d = asdict(self)
        return {
            "path": d["path"],
            "frames_in": "" if d["frames_in"] is None else d["frames_in"],
            "frames_out": d["frames_out"],
            "unreadable_frames": d["unreadable_frames"],
            "duration_s": round(d["duration_s"], 3),
            "frames_with_polyp": d["frames_with_polyp"],
            "polyp_events": d["polyp_events"],
            "status": d["status"],
            "error": d["error"],
            "output": d["output"],
            "report": d["report"],
            "attempts": d["attempts"],
            "processing_s": round(d["processing_s"], 2),
            "fps": round(self.fps, 2),
            "provider": d["provider"],
            "worker_rss_mb": round(d["worker_rss_mb"], 1),
        }


COLUMNS = list(ProcedureResult(0, "", "", "").row())
FIELDS = [f.name for f in fields(ProcedureResult)]
