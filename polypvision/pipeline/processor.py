"""The per-frame stages after the source: infer -> postprocess -> smooth -> overlay.

One :class:`FrameProcessor` per stream. It owns the segmenter call, the smoother state and
the reusable buffers; the offline exporter, the live runner, the GUI and the bench all call
the same two methods, so they measure and show the same thing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import cv2
import numpy as np

from polypvision.fov import Blackout
from polypvision.model.session import Segmenter
from polypvision.overlay import OverlayStyle, describe, draw, draw_hud, find_contours
from polypvision.smoothing import Smoother, SmoothingConfig
from polypvision.types import Frame, FrameResult


class FrameProcessor:
    def __init__(self, segmenter: Segmenter, smoothing: SmoothingConfig | None = None,
                 style: OverlayStyle | None = None, blackout: Blackout | None = None,
                 threshold: float | None = None) -> None:
        self.segmenter = segmenter
        self.style = style or OverlayStyle()
        self.blackout = blackout
        self.threshold = threshold if threshold is not None else segmenter.contract.output.threshold
        self.smoothing = smoothing or SmoothingConfig()
        self.smoother = self._smoother()
        spec = segmenter.contract.input
        self._mask255 = np.zeros((spec.height, spec.width), np.uint8)
        # Extra HUD lines (e.g. live FPS/latency), refreshed by whoever drives the pipeline.
        self.hud_lines: list[str] = []

    # -- settings that the GUI changes while running -------------------------------------------
    def set_threshold(self, threshold: float) -> None:
        self.threshold = threshold
        self.smoothing = replace(self.smoothing, on=None, off=None)
        self.smoother = self._smoother()

    def set_smoothing(self, config: SmoothingConfig) -> None:
        self.smoothing = config
        self.smoother = self._smoother()

    def _smoother(self) -> Smoother:
        out = self.segmenter.contract.output
        return Smoother(self.smoothing, self.threshold, min_area=out.min_area, min_peak=out.min_peak)

    def reset(self) -> None:
        """Forget temporal state (seek, source change)."""
        self.smoother.reset()

    # -- the stages ------------------------------------------------------------------------------
    def infer(self, frames: Sequence[Frame]) -> np.ndarray:
        """Model probabilities at model size, (N, h, w)."""
        return self.segmenter.predict_small([f.image for f in frames])

    def finish(self, frame: Frame, prob_small: np.ndarray, t_inferred: float = 0.0,
               t_started: float = 0.0) -> FrameResult:
        """Smooth, resize the mask to the frame, describe it and draw the overlay."""
        _, mask_small = self.smoother.update(prob_small)
        if self._mask255.shape != mask_small.shape:
            self._mask255 = np.zeros(mask_small.shape, np.uint8)
        np.multiply(mask_small, 255, out=self._mask255)
        h, w = frame.image.shape[:2]
        mask = cv2.resize(self._mask255, (w, h), interpolation=cv2.INTER_LINEAR)
        cv2.threshold(mask, 127, 255, cv2.THRESH_BINARY, dst=mask)
        contours = find_contours(mask)
        detection = describe(mask, prob_small, contours)
        canvas = frame.image.copy()
        if self.blackout is not None:
            self.blackout(canvas)
        draw(canvas, mask, contours, self.style)
        if self.style.hud:
            state = f"POLYP {detection.area_fraction:.1%}" if detection.present else "no polyp"
            draw_hud(canvas, [f"frame {frame.index}  t {frame.pts_s:.2f} s", f"{state}  peak {detection.peak_probability:.2f}",
                              f"{self.segmenter.contract.name} on {self.segmenter.report.name}", *self.hud_lines])
        return FrameResult(frame=frame, mask=mask, detection=detection, annotated=canvas,
                           t_started=t_started, t_inferred=t_inferred, t_done=time.perf_counter())

    def process(self, frames: Sequence[Frame]) -> list[FrameResult]:
        t0 = time.perf_counter()
        probs = self.infer(frames)
        t = time.perf_counter()
        return [self.finish(f, p, t, t0) for f, p in zip(frames, probs)]
