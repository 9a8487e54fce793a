"""Opening sources and loading models off the GUI thread, newest request wins.

Both can take seconds (a stream's connect timeout, a large model's graph optimisation). A
request made while another is in flight supersedes it: the older result is dropped (and a
stale source closed) instead of replacing what the user asked for last.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from polypvision.errors import UserError
from polypvision.gui.bridge import Bridge, run_async
from polypvision.sources import make_source, source_kind
from polypvision.sources.base import FrameSource


def build_source(spec: str, **kwargs) -> FrameSource:
    """The (unopened) source for a user's choice.

    A capture device's rate, size and format are each asked for only when chosen: None keeps
    the device's own default, whatever else was chosen. The simulated card plays at 30 fps,
    like a typical one.
    """
    fps = kwargs.pop("fps", None)
    if fps is None and source_kind(spec) == "synthetic":
        fps = 30.0
    return make_source(spec, fps=fps, **kwargs)


def open_blocking(spec: str, source: FrameSource | None = None, **kwargs) -> FrameSource:
    """Build (unless given) and open a source; raises SourceError with a one-line message."""
    source = source if source is not None else build_source(spec, **kwargs)
    source.open()
    return source


def load_blocking(path: Path | None, provider: str):
    """The chosen model (or the shipped default) as a Segmenter.

    In a window, insisting on CUDA would mean no video at all, so a failed 'cuda' falls back
    to the CPU and the provider line says loudly why, naming the user's explicit choice.
    """
    from polypvision.cli import resolve_model
    from polypvision.model.session import Segmenter, live_options

    p = resolve_model(Path(path) if path is not None else None, provider, realtime=True)
    try:
        return Segmenter(p, provider, **live_options())
    except UserError:
        if provider != "cuda":
            raise
        return Segmenter(p, "auto", requested="cuda", **live_options())


class Loader:
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self._latest: dict[str, int] = {}

    def submit(self, kind: str, fn: Callable[[], Any], on_done: Callable[[Any], None],
               on_error: Callable[[BaseException], None],
               on_stale: Callable[[Any], None] | None = None) -> None:
        token = self._latest.get(kind, 0) + 1
        self._latest[kind] = token

        def done(value: Any) -> None:
            if token == self._latest[kind]:
                on_done(value)
            elif on_stale is not None:
                on_stale(value)

        def failed(exc: BaseException) -> None:
            if token == self._latest[kind]:
                on_error(exc)

        run_async(self.bridge, f"pv-load-{kind}", fn, done, failed)
