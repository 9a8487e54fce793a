"""One stream's stages after the source: infer -> smooth -> mask -> describe -> draw.

A :class:`FrameProcessor` is one stream's state: its preprocessing buffers, its smoother and
its settings. The model session (:class:`Segmenter`) is immutable and shared; processors are
never shared. The live view, an export and a clip scan each run their own (``clone()``), which
keeps one stream's pixels out of another stream's masks.

Settings are one immutable :class:`StreamSettings` value. Whoever changes them (the GUI thread)
assigns a new value to ``processor.settings`` in one assignment; the processing thread reads
that attribute once per frame (once per batch offline), so a frame never sees half of a change
and the smoother is retuned at most once per change.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from polypvision.decision import Persistence, frame_score, region_peak
from polypvision.fov import Blackout
from polypvision.model.processing import Preprocessor, mask_to_size
from polypvision.model.session import Segmenter
from polypvision.overlay import (
    OverlayStyle,
    Scene,
    annotate,
    annotators_for,
    describe,
    find_contours,
    hud_lines,
)
from polypvision.settings import StreamSettings  # the schema; importable from here as before
from polypvision.smoothing import Smoother, SmoothingConfig
from polypvision.types import Frame, FrameResult


class FrameProcessor:
    """Per-stream state and stages; call from one thread at a time (clone() for another stream)."""

    def __init__(
        self,
        segmenter: Segmenter,
        smoothing: SmoothingConfig | None = None,
        style: OverlayStyle | None = None,
        blackout: Blackout | None = None,
        threshold: float | None = None,
        *,
        settings: StreamSettings | None = None,
    ) -> None:
        self.segmenter = segmenter
        if settings is None:
            settings = StreamSettings(
                threshold, smoothing or SmoothingConfig(), style or OverlayStyle(), blackout
            )
        self.settings = settings
        self._pre = Preprocessor(segmenter.contract.input, segmenter.max_batch)
        self._tuned_for: tuple[float, SmoothingConfig] | None = None
        self.smoother = self._tune(settings)
        self.decision = segmenter.contract.output.decision
        self.persistence = Persistence(self.decision.window, self.decision.min_hits)

    def clone(self, **changes: Any) -> FrameProcessor:
        """Same model and settings (with ``changes``), fresh buffers and smoothing history."""
        return FrameProcessor(self.segmenter, settings=replace(self.settings, **changes))

    # -- the current settings, read once ------------------------------------------------------
    @property
    def threshold(self) -> float:
        return self.settings.threshold_for(self.segmenter)

    @property
    def smoothing(self) -> SmoothingConfig:
        return self.settings.smoothing

    @property
    def style(self) -> OverlayStyle:
        return self.settings.style

    def _tune(self, s: StreamSettings) -> Smoother:
        """The smoother for ``s``: rebuilt only when its threshold or smoothing changed."""
        key = (s.threshold_for(self.segmenter), s.smoothing)
        if key != self._tuned_for:
            out = self.segmenter.contract.output
            old = getattr(self, "smoother", None)
            self.smoother = (
                old.retuned(key[1], key[0], out.min_area, out.min_peak)
                if old is not None
                else Smoother(key[1], key[0], min_area=out.min_area, min_peak=out.min_peak)
            )
            self._tuned_for = key
        return self.smoother

    def reset(self) -> None:
        """Forget temporal state (seek, source change)."""
        self.smoother.reset()
        self.persistence.reset()

    # -- the stages ------------------------------------------------------------------------------
    def infer(self, frames: Sequence[Frame]) -> np.ndarray:
        """Model probabilities at model size, (N, h, w), through this stream's own buffers."""
        return self.infer_full(frames)[0]

    def infer_full(self, frames: Sequence[Frame]) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`infer` plus the model's frame-level presence (N,), if it has one."""
        return self.segmenter.infer_small([f.image for f in frames], self._pre)

    def analyse(
        self,
        frame: Frame,
        prob_small: np.ndarray,
        settings: StreamSettings | None = None,
        t_inferred: float = 0.0,
        t_started: float = 0.0,
        presence: float | None = None,
    ) -> FrameResult:
        """Smooth, decide (:mod:`polypvision.decision`), scale the mask to the frame and describe
        it (nothing drawn yet). A frame the decision does not alarm on gets no outline."""
        s = settings if settings is not None else self.settings
        ema, mask01 = self._tune(s).update(prob_small)
        d = self.decision
        score = frame_score(d.score, presence, region_peak(ema, mask01))
        alarm = self.persistence.update(score > 0.0 and score >= d.threshold)
        mask_small = mask01.copy()  # the smoother reuses its buffer; the result outlives the call
        if not alarm:
            mask_small[:] = 0
        h, w = frame.image.shape[:2]
        mask = mask_to_size(mask_small, w, h)
        contours = find_contours(mask)
        return FrameResult(
            frame=frame,
            mask=mask,
            detection=describe(mask, prob_small, contours, score),
            t_started=t_started,
            t_inferred=t_inferred,
            t_done=time.perf_counter(),
            mask_small=mask_small,
            contours=contours,
        )

    def render(self, result: FrameResult, settings: StreamSettings | None = None) -> np.ndarray:
        """The result's own frame at full size with its annotators (:mod:`polypvision.overlay`)
        drawn: the style's fill, contour, box and HUD."""
        s = settings if settings is not None else self.settings
        canvas = result.frame.image.copy()
        if s.blackout is not None:
            s.blackout(canvas)
        lines = (
            hud_lines(result, self.segmenter.contract.name, self.segmenter.report.name)
            if s.style.hud
            else ()
        )
        return annotate(canvas, Scene(result.mask, result.contours, lines), annotators_for(s.style))

    def finish(
        self,
        frame: Frame,
        prob_small: np.ndarray,
        t_inferred: float = 0.0,
        t_started: float = 0.0,
        presence: float | None = None,
    ) -> FrameResult:
        """analyse() and render() under one reading of the settings."""
        s = self.settings
        result = self.analyse(frame, prob_small, s, t_inferred, t_started, presence)
        result.annotated = self.render(result, s)
        result.t_done = time.perf_counter()
        return result

    def process(self, frames: Sequence[Frame], render: bool = True) -> list[FrameResult]:
        """Infer a batch and finish every frame; ``render=False`` leaves ``annotated`` None."""
        s = self.settings  # once per batch: no frame of it sees half of a change
        t0 = time.perf_counter()
        probs, presence = self.infer_full(frames)
        t = time.perf_counter()
        out = []
        for k, (f, p) in enumerate(zip(frames, probs)):
            r = self.analyse(f, p, s, t, t0, None if presence is None else float(presence[k]))
            if render:
                r.annotated = self.render(r, s)
                r.t_done = time.perf_counter()
            out.append(r)
        return out
