"""Short texts the window shows, from core facts (no Qt)."""

from __future__ import annotations

from pathlib import Path

from polypvision.model.session import ProviderReport
from polypvision.sources import source_kind


def provider_text(asked: str, report: ProviderReport | None) -> tuple[str, bool]:
    """The provider line, and whether it is a warning (CUDA asked for and failed, CPU running);
    a machine without a GPU is told plainly, not warned for ever."""
    if report is None:
        return "no model loaded", False
    if asked in ("auto", "cuda") and report.name != "CUDA":
        if report.expected:
            return f"Running on CPU ({report.reason})", False
        return f"\u26a0 Running on CPU: {report.reason}", True
    return f"Running on {report.name}", False


def source_title(spec: str) -> str:
    """What the window's title calls a source: a file's or folder's name, ``demo``, or the spec."""
    kind = source_kind(spec)
    return Path(spec).name if kind in ("file", "frames") else "demo" if kind == "demo" else spec


def events_text(count: int) -> str:
    return f"{count} polyp event{'' if count == 1 else 's'}"
