"""Pre- and postprocessing, driven entirely by the model contract.

Preprocess: resize to the contract's size, reorder channels, x = (pixel * scale - mean) / std,
lay out as the contract says. The affine step is folded into one multiply-add per channel
(a = scale / std, b = -mean / std) computed once per model, and all buffers are reused
between batches, so the per-frame cost is one resize, one colour swap and two ufuncs.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from polypvision.model.contract import InputSpec

_INTERP = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Return a BGR uint8 HxWx3 view or copy of any decoded image.

    Grayscale, BGRA and 16-bit frames occur in real recordings and frame folders; they are
    converted here, once, at the source edge, so every later stage sees one format.
    """
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        elif np.issubdtype(image.dtype, np.floating):
            image = np.clip(
                np.nan_to_num(image) * (255.0 if image.max(initial=0) <= 1.0 else 1.0), 0, 255
            ).astype(np.uint8)
        else:
            image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3:
        channels = image.shape[2]
        if channels == 3:
            return image
        if channels == 4:
            return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        if channels == 1:
            return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    raise ValueError(f"unsupported frame shape {image.shape}")


class Preprocessor:
    """Turns BGR frames into the model's input batch, reusing its buffers."""

    def __init__(self, spec: InputSpec, max_batch: int = 1) -> None:
        self.spec = spec
        self._interp = _INTERP[spec.resize]
        std = np.asarray(spec.std, dtype=np.float32)
        self._a = (np.float32(spec.scale) / std).astype(np.float32)
        self._b = (-np.asarray(spec.mean, dtype=np.float32) / std).astype(np.float32)
        # mean/std are listed in the contract's colour order, which is the order of the
        # channels after the swap below, so no reordering of the constants is needed.
        self._capacity = 0
        self._resized = np.empty((0,), np.uint8)
        self._nhwc = np.empty((0,), np.float32)
        self._nchw = np.empty((0,), np.float32)
        self._ensure(max_batch)

    def _ensure(self, n: int) -> None:
        if n <= self._capacity:
            return
        self._capacity = n
        h, w = self.spec.height, self.spec.width
        self._resized = np.empty((n, h, w, 3), np.uint8)
        self._nhwc = np.empty((n, h, w, 3), np.float32)
        if self.spec.layout == "NCHW":
            self._nchw = np.empty((n, 3, h, w), np.float32)

    def __call__(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Return the input tensor for ``frames`` (a view into a reused buffer)."""
        n = len(frames)
        self._ensure(n)
        size = (self.spec.width, self.spec.height)
        swap = self.spec.color == "RGB"
        for i, img in enumerate(frames):
            dst = self._resized[i]
            if img.shape[0] == self.spec.height and img.shape[1] == self.spec.width:
                np.copyto(dst, img)
            else:
                cv2.resize(img, size, dst=dst, interpolation=self._interp)
            if swap:
                cv2.cvtColor(dst, cv2.COLOR_BGR2RGB, dst=dst)
        x = self._nhwc[:n]
        np.multiply(self._resized[:n], self._a, out=x)
        np.add(x, self._b, out=x)
        if self.spec.layout == "NCHW":
            out = self._nchw[:n]
            np.copyto(out, x.transpose(0, 3, 1, 2))
            return out
        return x


def preprocess(frames: Sequence[np.ndarray], spec: InputSpec) -> np.ndarray:
    """One-shot preprocessing (allocates; the pipeline keeps a :class:`Preprocessor`)."""
    return Preprocessor(spec, max(1, len(frames)))(frames).copy()


def to_probabilities(raw: np.ndarray, kind: str) -> np.ndarray:
    """Model output (N,H,W,1), (N,1,H,W) or (N,H,W) -> float32 probabilities (N,H,W) in [0,1].

    NaN or infinite outputs (a broken model, or a numerically unstable one) become 0 rather
    than propagating into masks and logs.
    """
    out = np.asarray(raw, dtype=np.float32)
    if out.ndim == 4:
        out = out[..., 0] if out.shape[-1] == 1 else out[:, 0]
    elif out.ndim != 3:
        raise ValueError(
            f"model output has shape {out.shape}; expected (N,H,W,1), (N,1,H,W) or (N,H,W)"
        )
    if kind == "logit":
        out = (1.0 / (1.0 + np.exp(-np.clip(out, -60.0, 60.0)))).astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        out = np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0, out=out if out.flags.writeable else None)


def mask_to_size(mask01: np.ndarray, width: int, height: int) -> np.ndarray:
    """A binary mask at model size
    (0/1 or bool) -> a new uint8 0/255 mask at ``width`` x ``height``.

    The one postprocessing step every consumer shares (exports, the live view at display
    size, the recorder, ``evaluate``): scale to 0/255, resize bilinearly, cut at half, so an
    edge lands where the model-size mask put it whatever the target size.
    """
    m255 = np.multiply(mask01, 255, dtype=np.uint8, casting="unsafe")
    if m255.shape[0] == height and m255.shape[1] == width:
        return m255
    out = cv2.resize(m255, (width, height), interpolation=cv2.INTER_LINEAR)
    cv2.threshold(out, 127, 255, cv2.THRESH_BINARY, dst=out)
    return out


def postprocess(prob_small: np.ndarray, threshold: float, width: int, height: int) -> np.ndarray:
    """Probabilities at model size -> the app's uint8 0/255 mask at frame size (no smoothing):
    a pixel is on at ``threshold`` or above, as the smoother's ``on`` level."""
    return mask_to_size((prob_small >= threshold).astype(np.uint8), width, height)


def resize_to(prob: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a probability or mask map back to the frame's size."""
    if prob.shape[1] == width and prob.shape[0] == height:
        return prob
    return cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)
