"""What one run applies to every procedure: annotate's settings and the job's context.

Both are plain frozen values: they are pickled to every worker (process pool or Ray).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from polypvision.settings import EventSettings, ExportSettings, StreamSettings


@dataclass(frozen=True)
class AnnotateSettings:
    """What a batch applies to every procedure: the schema's stream and export values (the same
    ones ``polypvision annotate`` builds from the same options), where the model runs, and
    whether masks are written."""

    stream: StreamSettings = field(default_factory=StreamSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    provider: str = "auto"
    threads: int | None = None
    masks: bool = False

    @property
    def batch(self) -> int:
        return self.export.batch

    @property
    def fps(self) -> float:
        return self.export.fps

    def output_key(self) -> dict[str, Any]:
        """The settings that change what annotate writes (not where or how fast it runs)."""
        return {"stream": asdict(self.stream), "export": asdict(self.export), "masks": self.masks}


def fingerprint(model_sha256: str, settings: AnnotateSettings) -> str:
    """Identifies the outputs one model and one set of settings make;
    a re-run with another redoes."""
    doc = json.dumps({"model": model_sha256, "settings": settings.output_key()}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class JobContext:
    """Everything a worker needs besides the procedure itself."""

    output_dir: Path
    model_path: Path  # on the worker's machine (a Ray worker rewrites it to its local copy)
    model_sha256: str
    settings: AnnotateSettings = field(default_factory=AnnotateSettings)
    events: EventSettings = field(default_factory=EventSettings)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.model_sha256, self.settings)
