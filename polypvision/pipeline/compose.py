"""Drawing the newest finished overlay on any frame, at any size.

The pass-through live view shows every video frame as it arrives with the newest model result
drawn on it; the recorder and snapshots draw the same thing at full size. The result's mask is
scaled from the model's size to the target size once per (result, size) and reused for every
frame drawn until the next result, so the per-frame cost is one resize of the picture to the
display and the drawing itself. Drawing at display size instead of the source's is what keeps
that cheap; the mask is scaled from the model's size, never from a full-size mask.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from polypvision.model.processing import mask_to_size
from polypvision.overlay import draw, find_contours
from polypvision.pipeline.processor import StreamSettings
from polypvision.types import Frame, FrameResult

POOL_SIZE = 4


@dataclass(frozen=True)
class LiveFrame:
    """One picture of the live view: a source frame, the overlay drawn on it, and how.

    ``overlay`` is the newest finished model result when the frame was shown (in pass-through
    usually of an earlier frame; in synchronous mode of this frame); ``settings`` the settings
    it was drawn with; ``image`` the picture at display size. The recorder and snapshots draw
    the same frame, overlay and settings again at full size (the recorder's copy carries no
    display picture, so the display's pool is never held up by a recording queue).
    """

    frame: Frame
    overlay: FrameResult | None
    settings: StreamSettings
    image: np.ndarray | None  # None in the recorder's copy
    t_published: float


def fit_size(src_w: int, src_h: int, area: tuple[int, int] | None) -> tuple[int, int]:
    """The largest size with the source's aspect ratio inside ``area`` (None: the source's size)."""
    if area is None or area[0] <= 0 or area[1] <= 0 or src_w <= 0 or src_h <= 0:
        return src_w, src_h
    scale = min(area[0] / src_w, area[1] / src_h)
    return max(int(src_w * scale), 1), max(int(src_h * scale), 1)


def _interpolation(w: int, h: int, tw: int, th: int) -> int:
    """Area averaging where OpenCV has a fast path (an exact integer shrink), bilinear elsewhere:
    area averaging by a fractional factor is far slower, too slow for a large frame per interval."""
    if tw < w and w % tw == 0 and h % th == 0 and w // tw == h // th:
        return cv2.INTER_AREA
    return cv2.INTER_LINEAR


class Compositor:
    """Composes (frame, overlay, settings) into a picture; one per consumer thread.

    Output pictures come from a small pool that is reused only once nobody else holds a
    picture (the display keeps the one on screen, a slot the next one), so a steady stream
    allocates nothing per frame and a picture is never overwritten while shown.
    """

    def __init__(self) -> None:
        self._pool: list[np.ndarray] = []
        self._cached: tuple[FrameResult, int, int] | None = None
        self._mask: np.ndarray | None = None
        self._contours: Sequence[np.ndarray] = ()

    def compose(
        self,
        image: np.ndarray,
        overlay: FrameResult | None,
        settings: StreamSettings,
        size: tuple[int, int] | None = None,
    ) -> np.ndarray:
        h, w = image.shape[:2]
        tw, th = size if size is not None else (w, h)
        canvas = self._buffer(th, tw)
        if (tw, th) == (w, h):
            np.copyto(canvas, image)
        else:
            cv2.resize(image, (tw, th), dst=canvas, interpolation=_interpolation(w, h, tw, th))
        if settings.blackout is not None:
            settings.blackout(canvas)
        if overlay is not None and settings.style.enabled:
            mask, contours = self._scaled(overlay, tw, th)
            draw(canvas, mask, contours, settings.style)
        return canvas

    def _scaled(
        self, overlay: FrameResult, w: int, h: int
    ) -> tuple[np.ndarray, Sequence[np.ndarray]]:
        c = self._cached
        if c is None or c[0] is not overlay or c[1] != w or c[2] != h:
            if overlay.mask.shape[0] == h and overlay.mask.shape[1] == w:
                self._mask, self._contours = overlay.mask, overlay.contours
            else:
                small = overlay.mask_small if overlay.mask_small is not None else overlay.mask
                self._mask = mask_to_size(small > 0, w, h)
                self._contours = find_contours(self._mask)
            self._cached = (overlay, w, h)
        return self._mask, self._contours  # type: ignore[return-value]

    def _buffer(self, h: int, w: int) -> np.ndarray:
        for i in range(len(self._pool)):
            # Two references (the pool's and getrefcount's argument) mean nobody else holds it.
            if sys.getrefcount(self._pool[i]) <= 2 and self._pool[i].shape[:2] == (h, w):
                return self._pool[i]
        buf = np.empty((h, w, 3), np.uint8)
        self._pool = [b for b in self._pool if b.shape[:2] == (h, w)][-(POOL_SIZE - 1) :] + [buf]
        return buf
