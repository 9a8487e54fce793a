"""Temporal smoothing of probability maps, so outlines do not flicker.

Three steps, all at the model's resolution (small, cheap):
1. an exponential moving average of the probability map (``alpha`` = weight of the newest frame);
2. hysteresis: a pixel turns on above ``on`` and stays on until it falls below ``off``;
3. connected components smaller than ``min_area`` (fraction of the frame), or whose smoothed
   probability never reaches ``min_peak``, are removed: the frame-level gate against false
   alarms on polyp-free mucosa. Both default to the model's own values (its contract's
   ``output.min_area`` / ``output.min_peak``, chosen on validation sequences at export).
``reset()`` forgets the past; call it on seek and on source change. ``alpha=1``,
``on=off=threshold`` and ``min_area=0`` switch smoothing off exactly.
The defaults come from ``scripts/tune_smoothing.py`` (see README, "Temporal smoothing").
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The settings value lives with every other setting; importable from here as before.
from polypvision.settings import HYSTERESIS_GAP, SmoothingConfig

__all__ = ["HYSTERESIS_GAP", "Smoother", "SmoothingConfig"]


@dataclass
class _Buffers:
    """A smoother's state at one frame size: the average, the mask, and two scratch masks."""

    ema: np.ndarray
    mask: np.ndarray
    hi: np.ndarray
    lo: np.ndarray

    @classmethod
    def of(cls, shape: tuple[int, ...]) -> _Buffers:
        return cls(
            np.zeros(shape, np.float32),
            np.zeros(shape, np.uint8),
            np.empty(shape, bool),
            np.empty(shape, bool),
        )


class Smoother:
    """Stateful per-stream smoother. One instance per source; not thread-safe."""

    def __init__(
        self,
        config: SmoothingConfig,
        threshold: float,
        min_area: float = 0.0,
        min_peak: float = 0.0,
    ) -> None:
        """``min_area`` / ``min_peak``: the model's gate, used where ``config`` leaves them None."""
        self.config = config.validated()
        self.min_area = float(config.min_area if config.min_area is not None else min_area)
        self.min_peak = float(config.min_peak if config.min_peak is not None else min_peak)
        self.on = config.on if config.on is not None else threshold
        off = config.off if config.off is not None else self.on - HYSTERESIS_GAP
        self.off = float(min(max(off, 0.0), self.on))
        self._buf: _Buffers | None = None

    def reset(self) -> None:
        self._buf = None

    def retuned(
        self,
        config: SmoothingConfig,
        threshold: float,
        min_area: float = 0.0,
        min_peak: float = 0.0,
    ) -> Smoother:
        """A smoother with new parameters that keeps this one's history, so moving a slider
        changes the outline from the next frame on instead of restarting the average."""
        new = Smoother(config, threshold, min_area, min_peak)
        new._buf = self._buf
        return new

    def update(self, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feed one probability map (H,W float32); return (smoothed probability, mask uint8 0/1).

        The returned arrays are internal buffers, valid until the next call.
        """
        b = self._buf
        first = b is None or b.ema.shape != prob.shape
        if b is None or first:
            b = self._buf = _Buffers.of(prob.shape)
            np.copyto(b.ema, prob)
        else:
            a = self.config.alpha
            if a >= 1.0:
                np.copyto(b.ema, prob)
            else:
                # ema += a * (prob - ema), in place
                b.ema *= 1.0 - a
                b.ema += a * prob
        ema, mask = b.ema, b.mask
        np.greater_equal(ema, self.on, out=b.hi)
        if not first and self.off < self.on:
            np.greater_equal(ema, self.off, out=b.lo)
            np.logical_and(b.lo, mask, out=b.lo)
            b.hi |= b.lo
        np.copyto(mask, b.hi, casting="unsafe")
        if (self.min_area > 0 or self.min_peak > self.on) and mask.any():
            self._gate(ema, mask)
        return ema, mask

    def _gate(self, ema: np.ndarray, mask: np.ndarray) -> None:
        """Drop components that are too small or never confident enough."""
        min_px = self.min_area * mask.size
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        drop = []
        for i in range(1, n):
            if stats[i, cv2.CC_STAT_AREA] < min_px:
                drop.append(i)
            elif self.min_peak > self.on:
                x, y, w, h = stats[i, :4]
                roi = labels[y : y + h, x : x + w] == i
                if float(ema[y : y + h, x : x + w][roi].max()) < self.min_peak:
                    drop.append(i)
        if drop:
            mask[np.isin(labels, drop)] = 0
