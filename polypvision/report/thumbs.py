"""Thumbnails of chosen frames of the annotated video (outline burned in), as data URIs."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

THUMB_WIDTH = 240


def frames_at(video: Path, positions: Iterable[int]) -> dict[int, np.ndarray]:
    """The frames at these 0-based positions (BGR), by seeking to the keyframe before each.

    Annotate writes frame ``i`` with presentation time ``i / rate``, so a position maps to a
    time exactly; decoding forward from the keyframe reaches it without reading the whole file.
    """
    import av

    out: dict[int, np.ndarray] = {}
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        for pos in sorted(set(positions)):
            container.seek(
                int(pos / rate / stream.time_base), stream=stream, backward=True, any_frame=False
            )
            last = None
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                last = frame
                if round(float(frame.pts * stream.time_base) * rate) >= pos:
                    break
            if last is not None:
                out[pos] = last.to_ndarray(format="bgr24")
    return out


def data_uri(bgr: np.ndarray, width: int = THUMB_WIDTH) -> str:
    h, w = bgr.shape[:2]
    if w > width:
        bgr = cv2.resize(bgr, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 82])
    if not ok:
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def thumbnails(video: Path, positions: Iterable[int]) -> dict[int, str]:
    """Data URIs by position; empty when the video cannot be read (the report says so)."""
    try:
        return {pos: data_uri(img) for pos, img in frames_at(video, positions).items()}
    except Exception as exc:  # a report without pictures beats no report
        log.warning("no thumbnails from %s: %s", video, exc)
        return {}
