"""Plain data passed between pipeline stages (no behaviour, no Qt)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    ``image`` is always BGR uint8, HxWx3 (sources normalise odd inputs once, at the edge).
    ``t_capture`` is ``time.perf_counter()`` when the frame left the source, the start of
    every latency figure. ``pts_s`` is the media time (seconds) for files, or seconds since
    open for live sources. ``name`` is the file stem for a folder of frames.
    """

    index: int
    image: np.ndarray
    t_capture: float
    pts_s: float
    name: str | None = None


@dataclass(frozen=True)
class SourceInfo:
    """What a source reports after ``open()``: what was granted, not what was asked."""

    description: str
    width: int
    height: int
    fps: float
    frame_count: int | None
    live: bool
    seekable: bool
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Detection:
    """Per-frame findings, as logged: one JSON line each."""

    present: bool
    area_fraction: float
    boxes: tuple[tuple[int, int, int, int], ...]
    peak_probability: float
    score: float = 0.0  # the frame's decision score (polypvision.decision); alarm = present


@dataclass
class FrameResult:
    """A frame after the model and smoothing (and, when drawn, the overlay); carries its index.

    ``mask_small`` is the smoothed mask at the model's size (0/1): the pass-through view and
    the recorder scale it to whatever size they draw at. ``contours`` are the outlines of
    ``mask``. ``annotated`` stays None until someone needs the frame drawn at full size (an
    export's video, the synchronous view): the live view draws on newer frames instead.
    """

    frame: Frame
    mask: np.ndarray  # uint8 0/255 at the frame's size
    detection: Detection
    annotated: np.ndarray | None = None  # BGR uint8, the frame with overlay burned in
    t_started: float = 0.0  # when its batch entered the model
    t_inferred: float = 0.0
    t_done: float = 0.0
    mask_small: np.ndarray | None = None  # uint8 0/1 at the model's input size
    contours: Sequence[np.ndarray] = ()

    @property
    def index(self) -> int:
        return self.frame.index

    @property
    def processing_ms(self) -> float:
        """Model + postprocessing + overlay time of this frame's batch (excludes queueing)."""
        return (self.t_done - self.t_started) * 1000.0 if self.t_started else 0.0

    @property
    def latency_ms(self) -> float:
        return (self.t_done - self.frame.t_capture) * 1000.0
