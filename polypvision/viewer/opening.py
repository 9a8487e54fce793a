"""Opening a source and loading a model for the app (blocking;
the app runs them off its GUI thread)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polypvision.errors import UserError
from polypvision.model.registry import resolve_model
from polypvision.model.session import Segmenter, live_options
from polypvision.sources import make_source, source_kind
from polypvision.sources.base import FrameSource

SIMULATED_CARD_FPS = 30.0


def build_source(spec: str, **kwargs: Any) -> FrameSource:
    """The (unopened) source for a user's choice.

    A capture device's rate, size and format are each asked for only when chosen: None keeps
    the device's own default, whatever else was chosen. The simulated card plays at the rate
    of a typical one (``SIMULATED_CARD_FPS``).
    """
    fps = kwargs.pop("fps", None)
    if fps is None and source_kind(spec) == "synthetic":
        fps = SIMULATED_CARD_FPS
    return make_source(spec, fps=fps, **kwargs)


def open_blocking(spec: str, source: FrameSource | None = None, **kwargs: Any) -> FrameSource:
    """Build (unless given) and open a source; raises SourceError with a one-line message."""
    source = source if source is not None else build_source(spec, **kwargs)
    source.open()
    return source


def load_blocking(path: Path | None, provider: str) -> Segmenter:
    """The chosen model (or the shipped default) as a Segmenter.

    In a window, insisting on CUDA would mean no video at all, so a failed 'cuda' falls back
    to the CPU and the provider line says loudly why, naming the user's explicit choice.
    """
    p = resolve_model(Path(path) if path is not None else None, provider)
    try:
        return Segmenter(p, provider, **live_options())
    except UserError:
        if provider != "cuda":
            raise
        return Segmenter(p, "auto", requested="cuda", **live_options())
