"""A deterministic synthetic colonoscopy-like clip, for tests, benchmarks and the demo.

Frame i is a pure function of (seed, i): reddish mucosa with vessel texture and a dark
border outside a circular field of view, with a pale raised "polyp" drifting across it and a
specular highlight. ``stamp=True`` writes the frame index as a binary code in the top-left
corner, so a test can decode an exported clip and prove every frame came out, in order.
``live=True`` paces frames at ``fps`` through the same grabber thread the real capture
devices use, so newest-frame-wins, drop counting and signal-lost recovery are exercised
without hardware; ``outage=(a, b)`` makes the "device" deliver nothing for frames a..b-1.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from polypvision.sources.base import FrameSource, now
from polypvision.sources.live import LiveSource
from polypvision.types import Frame, SourceInfo

STAMP_BITS = 16
STAMP_CELL = 8


def stamp_index(img: np.ndarray, index: int) -> None:
    """Write ``index`` as 16 black/white cells of 8x8 px along the top-left edge."""
    for bit in range(STAMP_BITS):
        v = 255 if (index >> bit) & 1 else 0
        img[0:STAMP_CELL, bit * STAMP_CELL : (bit + 1) * STAMP_CELL] = v


def read_stamp(img: np.ndarray) -> int:
    """Decode :func:`stamp_index` from a (possibly lossy-compressed) frame."""
    gray = img if img.ndim == 2 else img.mean(axis=2)
    value = 0
    c = STAMP_CELL
    for bit in range(STAMP_BITS):
        cell = gray[2 : c - 2, bit * c + 2 : (bit + 1) * c - 2]
        if cell.mean() > 127:
            value |= 1 << bit
    return value


def polyp_visible(index: int) -> bool:
    """The synthetic polyp leaves the view for the last 50 of every 250 frames, so clips (the
    bundled demo among them) have polyp-free stretches too."""
    return (index % 250) < 200


class SyntheticClip:
    """Renders frames and their ground-truth masks."""

    def __init__(
        self, width: int = 640, height: int = 480, seed: int = 0, stamp: bool = False
    ) -> None:
        self.width, self.height, self.seed, self.stamp = width, height, seed, stamp
        rng = np.random.default_rng(seed)
        pad = 64
        h, w = height + 2 * pad, width + 2 * pad
        noise = cv2.GaussianBlur(rng.random((h, w), np.float32), (0, 0), 9)
        noise = (noise - noise.min()) / max(float(np.ptp(noise)), 1e-6)
        vessels = cv2.GaussianBlur(rng.random((h, w), np.float32), (0, 0), 2.5)
        vessels = np.clip((vessels - 0.5) * 12.0, 0, 1)
        base = np.empty((h, w, 3), np.float32)
        base[..., 2] = 150 + 70 * noise  # R
        base[..., 1] = 55 + 35 * noise - 30 * vessels  # G
        base[..., 0] = 50 + 25 * noise - 20 * vessels  # B
        self._bg = np.clip(base, 0, 255).astype(np.uint8)
        self._pad = pad
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        cx, cy, r = width / 2, height / 2, 0.52 * min(width, height) * 1.15
        d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / r
        self._vignette = np.clip(1.25 - d * d, 0, 1)[..., None].astype(np.float32)
        self._fov = (d < 1.0).astype(np.uint8)

    def _polyp(self, index: int) -> tuple[float, float, float, float, float]:
        t = index / 25.0
        w, h = self.width, self.height
        cx = w * (0.5 + 0.28 * np.sin(0.35 * t + self.seed))
        cy = h * (0.5 + 0.22 * np.sin(0.23 * t + 1.3 + self.seed))
        ax = min(w, h) * (0.10 + 0.03 * np.sin(0.5 * t))
        ay = ax * 0.8
        angle = 30.0 * np.sin(0.2 * t)
        return cx, cy, ax, ay, angle

    def visible(self, index: int) -> bool:
        return polyp_visible(index)

    def mask(self, index: int) -> np.ndarray:
        m = np.zeros((self.height, self.width), np.uint8)
        if self.visible(index):
            cx, cy, ax, ay, ang = self._polyp(index)
            cv2.ellipse(m, (int(cx), int(cy)), (int(ax), int(ay)), ang, 0, 360, 255, -1)
        return m

    def frame(self, index: int) -> np.ndarray:
        t = index / 25.0
        p = self._pad
        ox = int(p + p * 0.8 * np.sin(0.4 * t))
        oy = int(p + p * 0.8 * np.cos(0.3 * t))
        img = self._bg[oy : oy + self.height, ox : ox + self.width]
        img = img.astype(np.float32)
        if self.visible(index):
            cx, cy, ax, ay, ang = self._polyp(index)
            layer = np.zeros((self.height, self.width), np.float32)
            cv2.ellipse(layer, (int(cx), int(cy)), (int(ax), int(ay)), ang, 0, 360, 1.0, -1)
            dome = cv2.GaussianBlur(layer, (0, 0), max(ax / 3, 1))
            color = np.array([120, 140, 215], np.float32)
            img = img * (1 - layer[..., None] * 0.85) + color * (layer * 0.85)[..., None] * (
                0.6 + 0.6 * dome[..., None]
            )
            cv2.circle(
                img,
                (int(cx - ax * 0.3), int(cy - ay * 0.35)),
                max(int(ax * 0.12), 2),
                (255, 255, 255),
                -1,
            )
        img *= self._vignette
        img[self._fov == 0] = 8
        out = np.clip(img, 0, 255).astype(np.uint8)
        if self.stamp:
            stamp_index(out, index)
        return out


class SyntheticSource(FrameSource):
    """A finite synthetic clip read as fast as asked (file-like: seekable, never drops)."""

    def __init__(
        self,
        frames: int = 250,
        width: int = 640,
        height: int = 480,
        fps: float = 25.0,
        seed: int = 0,
        stamp: bool = False,
    ) -> None:
        super().__init__()
        self.n, self.fps = frames, fps
        self.clip = SyntheticClip(width, height, seed, stamp)
        self._i = 0

    def open(self) -> SourceInfo:
        self._i = 0
        self.info = SourceInfo(
            description=f"synthetic {self.clip.width}x{self.clip.height} seed {self.clip.seed}",
            width=self.clip.width,
            height=self.clip.height,
            fps=self.fps,
            frame_count=self.n,
            live=False,
            seekable=True,
        )
        return self.info

    def read(self) -> Frame | None:
        if self._i >= self.n:
            return None
        i = self._i
        self._i += 1
        return Frame(i, self.clip.frame(i), now(), i / self.fps)

    def seek(self, index: int) -> None:
        self._i = min(max(0, index), self.n)

    def close(self) -> None:
        self._i = self.n


class _PacedCapture:
    """Quacks like cv2.VideoCapture: paced frames, optional outage, for LiveSource."""

    def __init__(
        self,
        clip: SyntheticClip,
        fps: float,
        frames: int | None,
        outage: tuple[int, int] | None,
        start_index: int = 0,
        rendered: list[np.ndarray] | None = None,
    ) -> None:
        self.clip, self.fps, self.frames, self.outage = clip, fps, frames, outage
        self.rendered = rendered
        self.i = start_index
        self._next_t = time.perf_counter()
        self._open = True

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's spelling
        return self._open

    def read(self):
        if not self._open or (self.frames is not None and self.i >= self.frames):
            time.sleep(0.01)
            return False, None
        delay = self._next_t - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        self._next_t = max(self._next_t + 1.0 / self.fps, time.perf_counter() - 1.0 / self.fps)
        i = self.i
        self.i += 1
        if self.outage and self.outage[0] <= i < self.outage[1]:
            return False, None
        if self.rendered:
            return True, self.rendered[
                i % len(self.rendered)
            ].copy()  # a device hands out new memory
        return True, self.clip.frame(i)

    def get(self, prop: int) -> float:
        return {
            cv2.CAP_PROP_FPS: self.fps,
            cv2.CAP_PROP_FRAME_WIDTH: self.clip.width,
            cv2.CAP_PROP_FRAME_HEIGHT: self.clip.height,
        }.get(prop, 0.0)

    def release(self) -> None:
        self._open = False


class LiveSyntheticSource(LiveSource):
    """The synthetic clip delivered in real time, like a capture card.

    ``prerender=N`` renders N frames once and cycles them: rendering a large frame can cost more
    than a frame interval, and a capture card hands out finished frames, so the live benchmark
    measures the pipeline, not the generator.
    """

    def __init__(
        self,
        fps: float = 30.0,
        width: int = 640,
        height: int = 480,
        seed: int = 0,
        frames: int | None = None,
        stamp: bool = False,
        outage: tuple[int, int] | None = None,
        prerender: int = 0,
    ) -> None:
        super().__init__()
        self.clip = SyntheticClip(width, height, seed, stamp)
        self.fps, self.frames, self.outage = fps, frames, outage
        self.rendered = [self.clip.frame(i * 5) for i in range(prerender)]
        self._cap_obj: _PacedCapture | None = None

    def _describe(self) -> str:
        return f"live synthetic {self.clip.width}x{self.clip.height}@{self.fps:g}"

    def _make_capture(self) -> _PacedCapture:
        start = self._cap_obj.i if self._cap_obj is not None else 0
        self._cap_obj = _PacedCapture(
            self.clip, self.fps, self.frames, self.outage, start, self.rendered
        )
        return self._cap_obj
