"""The outcome of one procedure: one row of ``summary.csv`` and one line of the index page."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Status words. "done earlier": an earlier run completed it (checked, see outputs.py), so it was
# not analysed again (not "skipped": a reader hears "not analysed"). "partial": exported, but
# frames the input announced could not be decoded (a damaged or truncated recording), which
# ``annotate`` calls PARTIAL and exits 3 on. "not run": never finished (interrupted or killed).
OK, DONE_EARLIER, PARTIAL, FAILED, NOT_RUN = "ok", "done earlier", "partial", "failed", "not run"
SKIPPED = DONE_EARLIER  # the former name


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
    processing_s: float = 0.0  # when done earlier: that run's time, not this run's check
    provider: str = ""
    provider_detail: str = ""  # the provider line with its reason (said once per run, not a column)
    worker_rss_mb: float = 0.0  # resident memory of the worker after this procedure
    warnings: list[str] = field(default_factory=list)
    detail: str = ""  # a traceback for a failure that is a bug, shown with --verbose
    analysed_now: bool = False  # annotated in this run (not done earlier)

    @property
    def done(self) -> bool:
        """Analysed, whole: now or in an earlier run."""
        return self.status in (OK, DONE_EARLIER)

    @property
    def exported(self) -> bool:
        """Its outputs are there (whole, or a partial recording's decodable frames)."""
        return self.status in (OK, DONE_EARLIER, PARTIAL)

    @property
    def fps(self) -> float:
        return (
            self.frames_out / self.processing_s if self.exported and self.processing_s > 0 else 0.0
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
