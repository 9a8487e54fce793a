"""What one run applies to every procedure: annotate's settings and the job's context.

Both are plain frozen values: they are pickled to every worker (process pool or Ray).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from polypvision.events import EventSettings


@dataclass(frozen=True)
class AnnotateSettings:
    """The options of ``polypvision annotate`` that a batch passes through, with its defaults."""

    batch: int = 4
    fps: float = 25.0  # for folders of frames
    encoder_preset: str = "veryfast"
    provider: str = "auto"
    threads: int | None = None
    style: str = "fill,contour"
    color: str = "#00ff00"
    opacity: float = 0.35
    threshold: float | None = None
    smooth_alpha: float | None = None
    min_area: float | None = None
    hud: bool = False
    blackout: bool = False
    masks: bool = False

    def output_key(self) -> dict[str, Any]:
        """The settings that change what annotate writes (not where or how fast it runs)."""
        d = asdict(self)
        for k in ("provider", "threads"):
            d.pop(k)
        return d

    def namespace(
        self, source: str, model: Path, output: Path, log: Path, masks: Path | None
    ) -> argparse.Namespace:
        """The argument namespace ``polypvision annotate`` would have parsed for these settings."""
        return argparse.Namespace(
            input=source,
            output=output,
            log=log,
            masks=masks,
            model=model,
            quiet=True,
            **{k: v for k, v in asdict(self).items() if k != "masks"},
        )


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
