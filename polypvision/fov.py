"""Field of view: the bright, round image area of an endoscope inside its dark border.

Endoscopy towers print text (patient name, date, settings) in the dark border around the
image. ``--blackout`` zeroes every pixel outside the field of view in exports, so clips can
leave the hospital without that text. The field of view is found once per source (from a
few frames, since it does not move) as the largest bright connected region, filled and
slightly eroded so that text touching its edge does not survive.
"""

from __future__ import annotations

import cv2
import numpy as np

BRIGHT_LEVEL = 25
ERODE_PX = 3


def detect_fov(frames: list[np.ndarray]) -> np.ndarray:
    """Return a uint8 mask (1 inside the field of view) from one or more BGR frames."""
    if not frames:
        raise ValueError("detect_fov needs at least one frame")
    h, w = frames[0].shape[:2]
    stack = np.max(
        np.stack(
            [
                cv2.cvtColor(
                    f if f.shape[:2] == (h, w) else cv2.resize(f, (w, h)), cv2.COLOR_BGR2GRAY
                )
                for f in frames
            ]
        ),
        axis=0,
    )
    # A median (not a Gaussian) blur: it removes noise but keeps text strokes thin, so the opening
    # below deletes the text instead of the blur merging it into a blob that joins the view.
    bright = (cv2.medianBlur(stack, 5) > BRIGHT_LEVEL).astype(np.uint8)
    k = max(15, min(h, w) // 32) | 1
    bright = cv2.morphologyEx(bright, cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    if n <= 1:
        return np.ones((h, w), np.uint8)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    region = (labels == best).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(max(contours, key=cv2.contourArea))
    fov = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(fov, hull, 1)
    if ERODE_PX:
        return cv2.erode(fov, np.ones((2 * ERODE_PX + 1, 2 * ERODE_PX + 1), np.uint8))
    return fov


def detect_fov_in(source, samples: int = 8) -> np.ndarray | None:
    """The field of view of an open, seekable source, from frames spread over the whole clip
    (a recording may start black or on a menu screen); the source is rewound to frame 0."""
    total = source.info.frame_count if source.info else None
    if total and total > 1:
        positions = sorted({int(i * total / samples) for i in range(samples)})
    else:
        positions = [0]
    frames = []
    for pos in positions:
        source.seek(pos)
        frame = source.read()
        if frame is not None:
            frames.append(frame.image)
    source.seek(0)
    return detect_fov(frames) if frames else None


class Blackout:
    """Applies a field-of-view mask; the outside-pixel index is computed once per frame size."""

    def __init__(self, fov: np.ndarray) -> None:
        self.fov = fov
        self._outside: dict[tuple[int, int], np.ndarray] = {}

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Zero everything outside the field of view, in place."""
        key = image.shape[:2]
        outside = self._outside.get(key)
        if outside is None:
            fov = self.fov
            if fov.shape != key:
                fov = cv2.resize(fov, (key[1], key[0]), interpolation=cv2.INTER_NEAREST)
            outside = self._outside[key] = fov == 0
        image[outside] = 0
        return image
