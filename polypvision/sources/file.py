"""Recorded video files, decoded by PyAV (FFmpeg).

PyAV hands over packets and frames one at a time, so a damaged stretch costs only the frames
that are really damaged: a packet that fails to decode is counted and skipped, the demuxer
resyncs after unreadable bytes, and decoding carries on to the end of the file (OpenCV's
reader stops at the first failed read and, at a truncated end, repeats the previous picture).
Each frame keeps the file's own timestamp, so a variable-frame-rate file keeps its timing.

A seek goes by the file's frame table (every packet's timestamp, read once, without decoding,
at the first seek): frame k is the k-th timestamp in presentation order, so the frame landed on
is frame k and is labelled with its true index even where the frame rate varies (a seek by
``k / fps`` seconds landed elsewhere in a variable-frame-rate file while being called frame k,
so the timeline and "next detection" disagreed with a pass over the whole clip).
"""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from polypvision.errors import SourceError, cause_line
from polypvision.model.processing import to_bgr
from polypvision.sources.base import FrameSource, now
from polypvision.types import Frame, SourceInfo

log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0
MAX_DEMUX_ERRORS = 200  # consecutive unreadable stretches before the rest of a file is given up
VFR_TOLERANCE = 0.25  # a frame interval this far (relative) from the nominal one makes a file VFR


def check_input_file(path: Path) -> None:
    """Clear errors for the common ways a path is not a readable file."""
    if not path.exists():
        raise SourceError(f"input not found: {path}; check the path")
    if path.is_dir():
        return
    if not os.access(path, os.R_OK):
        raise SourceError(f"input is not readable: {path}; check its permissions")
    if path.stat().st_size == 0:
        raise SourceError(f"input file is empty (0 bytes): {path}; it is not a video")


# FFmpeg demuxers that "decode" things that are not videos (a text file becomes ANSI art).
_NOT_VIDEO_FORMATS = {"tty", "txt"}


def frame_to_bgr(vf: Any) -> np.ndarray:
    """A decoded PyAV frame as BGR uint8; the common yuv420p goes through OpenCV (faster)."""
    if vf.format.name == "yuv420p" and vf.width % 2 == 0 and vf.height % 2 == 0:
        return cv2.cvtColor(vf.to_ndarray(), cv2.COLOR_YUV2BGR_I420)
    try:
        return vf.to_ndarray(format="bgr24")
    except ValueError:
        return to_bgr(vf.to_ndarray())


class VideoFileSource(FrameSource):
    """A video file: every decodable frame, in order, with its own timestamp.

    ``unreadable`` counts the frames that were lost: those the container's index announces but
    that never decoded, or, without an index, the packets that failed to decode.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self._container: Any = None
        self._stream: Any = None
        self._frames: Iterator[Any] | None = None
        self._first: Frame | None = None
        self._next = 0
        self._expected: int | None = None  # frames the container's index announces
        self._fps = DEFAULT_FPS
        self._t0 = 0.0  # the stream's start time: pts_s counts from it
        self._offset = 0.0  # added after a backwards timestamp jump (concatenated segments)
        self._prev_t: float | None = None
        self._skip_before: float | None = None  # after a seek: decode up to the target quietly
        self._skip_pts: int | None = None  # the same, by the frame table's timestamp
        # every frame's pts in presentation order (built at the first seek); None: no usable one
        self._table: list[int] | None = None
        self._table_built = False
        self._from_start = True  # this pass began at frame 0, so its count says what was lost
        self._decoded = 0
        self._packets = 0
        self._bad_packets = 0
        self._first_damage_s: float | None = None
        self._intervals = [float("inf"), 0.0]  # shortest and longest frame interval seen
        self._irregular = 0  # intervals far from the nominal one
        self._reported = False

    # -- open ------------------------------------------------------------------------------
    def open(self) -> SourceInfo:
        check_input_file(self.path)
        import av

        try:
            container = av.open(str(self.path), metadata_errors="ignore")
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise SourceError(
                f"cannot decode {self.path}: not a video file FFmpeg can read ({cause_line(exc)}); "
                "pass a video file or a folder of frames"
            ) from None
        fmt = container.format
        reason = None
        if fmt.name in _NOT_VIDEO_FORMATS:
            reason = f"it is a {fmt.long_name or fmt.name} file"
        elif not container.streams.video:
            reason = "it has no video stream"
        if reason is not None:
            container.close()
            raise SourceError(
                f"cannot decode {self.path}: not a video ({reason}); pass a video file or a "
                "folder of frames"
            )
        stream = container.streams.video[0]
        # Slice threads, not frame threads: frame threading conceals a damaged frame with the one
        # before it (a cut file's last frame came out as a repeat) and delays every frame by the
        # thread count, which a paused or stepping viewer would see.
        stream.thread_type = "SLICE"
        self._container, self._stream = container, stream
        tb = stream.time_base
        self._t0 = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
        self._fps = self._nominal_fps(stream)
        self._expected = int(stream.frames) if stream.frames and stream.frames > 0 else None
        self._frames = self._decode()
        first = self._next_frame()
        if first is None:
            self.close()
            raise SourceError(
                f"cannot decode any frame of {self.path}: the file is damaged or not a video"
            )
        self._first = first
        h, w = first.image.shape[:2]
        extra: dict[str, object] = {}
        sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
        if sar and sar > 0 and sar != 1:
            extra["pixel_aspect"] = Fraction(sar.numerator, sar.denominator)
        self.info = SourceInfo(
            description=str(self.path),
            width=w,
            height=h,
            fps=self._fps,
            frame_count=self._expected or self._estimate_count(),
            live=False,
            seekable=True,
            extra=extra,
        )
        return self.info

    @staticmethod
    def _nominal_fps(stream: Any) -> float:
        for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
            if rate and 1.0 <= float(rate) <= 1000.0:
                return float(rate)
        return DEFAULT_FPS

    def _estimate_count(self) -> int | None:
        """Frames a container without an index holds, from its duration (a seek bar's length)."""
        c, s = self._container, self._stream
        dur = (
            float(s.duration * s.time_base)
            if s.duration and s.time_base
            else (c.duration or 0) / 1e6
        )
        return max(1, round(dur * self._fps)) if dur > 0 else None

    # -- decoding ----------------------------------------------------------------------------
    def _decode(self) -> Iterator[Any]:
        """Every frame of the stream from where the container stands; past damage, not to it."""
        import av

        errors = 0
        while errors <= MAX_DEMUX_ERRORS:
            packets = self._container.demux(self._stream)
            try:
                for packet in packets:
                    errors = 0
                    if packet.size:
                        self._packets += 1
                    try:
                        frames = packet.decode()
                    except av.error.FFmpegError:
                        self._damaged(packet)
                        continue
                    yield from frames
                return
            except (av.error.EOFError, EOFError):
                return
            except av.error.FFmpegError:  # unreadable bytes: the next demux call resyncs after them
                errors += 1
                self._damaged(None)

    def _damaged(self, packet: Any) -> None:
        self._bad_packets += 1
        if self._first_damage_s is None:
            t = (
                packet.pts * packet.time_base
                if packet is not None and packet.pts is not None and packet.time_base
                else None
            )
            self._first_damage_s = float(t) - self._t0 if t is not None else self._prev_t or 0.0

    def _next_frame(self) -> Frame | None:
        while self._frames is not None:
            vf = next(self._frames, None)
            if vf is None:
                self._frames = None
                self._at_end()
                return None
            t = self._timestamp(vf)
            if self._skip_pts is not None:
                if vf.pts is not None and vf.pts < self._skip_pts:
                    continue
                self._skip_pts = None
            elif self._skip_before is not None and t < self._skip_before:
                continue
            self._skip_before = None
            self._decoded += 1
            index = self._next if self._from_start else self._index_of(vf.pts)
            frame = Frame(index, frame_to_bgr(vf), now(), t)
            self._next = index + 1
            return frame
        return None

    def _index_of(self, pts: int | None) -> int:
        """A frame's true index after a seek: its place in the frame table (else the count)."""
        table = self._table
        if table is None or pts is None:
            return self._next
        i = bisect.bisect_left(table, pts)
        return i if i < len(table) and table[i] == pts else self._next

    def _frame_table(self) -> list[int] | None:
        """Every frame's timestamp in presentation order, from one pass over the packets on a
        second handle (no decoding: a fraction of a second for a long clip). None when the file
        cannot say: a packet without a timestamp, a clock that restarts (concatenated segments)
        or repeated timestamps; seeks then go by time, as before."""
        if self._table_built:
            return self._table
        self._table_built = True
        import av

        pts: list[int] = []
        try:
            with av.open(str(self.path), metadata_errors="ignore") as c:
                last_dts = None
                for pk in c.demux(c.streams.video[0]):
                    if not pk.size:
                        continue
                    if pk.pts is None or (
                        pk.dts is not None and last_dts is not None and pk.dts < last_dts
                    ):
                        return None
                    last_dts = pk.dts if pk.dts is not None else last_dts
                    pts.append(int(pk.pts))
        except (av.error.FFmpegError, OSError, ValueError, IndexError) as exc:
            log.debug("%s: no frame table (%s); seeking by time", self.path.name, exc)
            return None
        pts.sort()
        if not pts or any(a == b for a, b in zip(pts, pts[1:])):
            return None
        self._table = pts
        return pts

    def _timestamp(self, vf: Any) -> float:
        """Seconds from the stream's start, never going backwards (a file of concatenated
        segments restarts its clock; the later segment is shifted to follow the earlier)."""
        if vf.pts is None or vf.time_base is None:
            t = (self._prev_t + 1.0 / self._fps) if self._prev_t is not None else 0.0
        else:
            t = float(vf.pts * vf.time_base) - self._t0 + self._offset
        prev = self._prev_t
        if prev is not None and self._skip_before is None and self._skip_pts is None:
            if t <= prev:
                self._offset += prev + 1.0 / self._fps - t
                t = prev + 1.0 / self._fps
            gap = t - prev
            self._intervals = [min(self._intervals[0], gap), max(self._intervals[1], gap)]
            self._irregular += abs(gap * self._fps - 1.0) > VFR_TOLERANCE
        self._prev_t = t
        return t

    def _at_end(self) -> None:
        """At the end of a pass from the first frame: count what was lost, once."""
        if not self._from_start or self._reported:
            return
        self._reported = True
        exp = self._expected
        lost = max(exp - self._decoded, 0) if exp is not None else 0
        lost = max(lost, self._bad_packets if exp is None else 0)
        self.unreadable = lost
        if lost:
            where = (
                f"; first damage {self._first_damage_s:.2f} s in"
                if self._first_damage_s is not None
                else ""
            )
            total = (
                f"{self._decoded} of {exp} frames the header announces"
                if exp
                else f"{self._decoded} frames"
            )
            msg = (
                f"{self.path.name}: decoded {total}; {lost} frame(s) could not be decoded{where} "
                "(the file is damaged or truncated)"
            )
            self.warnings.append(msg)
            log.info(msg)  # a warning for the caller to show (self.warnings), once

    def expected_frames(self) -> int | None:
        return self._expected

    def facts(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        lo, hi = self._intervals
        # A damaged stretch leaves one long interval per stretch: that is loss, not timing.
        if self._irregular > self._bad_packets:
            out["variable_frame_rate"] = {
                "interval_ms": [round(lo * 1000, 1), round(hi * 1000, 1)],
                "written_at": "the input's own timestamps",
            }
        if self.info is not None and "pixel_aspect" in self.info.extra:
            sar = self.info.extra["pixel_aspect"]
            out["pixel_aspect"] = f"{sar.numerator}:{sar.denominator}"
        return out

    def read(self) -> Frame | None:
        if self._container is None:
            return None
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        return self._next_frame()

    def seek(self, index: int) -> None:
        if self._container is None:
            raise SourceError("seek on a closed source")
        index = max(0, int(index))
        if index == 0 and self._first is not None:
            return  # frame 0 is decoded and waiting (just opened)
        if index == self._next and self._first is None and self._frames is not None:
            # the next frame anyway (stepping forward): no seek, no re-decode from a keyframe
            return
        self._first = None
        target = index / self._fps
        s = self._stream
        ts = round((target + self._t0) / s.time_base) if s.time_base else 0
        table = self._frame_table() if index > 0 else None
        self._skip_pts = None
        if table is not None:
            index = min(index, len(table) - 1)
            ts = self._skip_pts = table[index]
        try:
            self._container.seek(ts, stream=s, backward=True, any_frame=False)
        except Exception:  # a file without an index: start over and decode up to the target
            self._container.seek(0, backward=True, any_frame=False)
        self._offset, self._prev_t = 0.0, None
        self._skip_before = target - 0.5 / self._fps if index > 0 and table is None else None
        self._from_start = index == 0
        if index == 0:
            self._decoded = self._bad_packets = self._packets = 0
        self._frames = self._decode()
        self._next = index

    def close(self) -> None:
        c, self._container = self._container, None
        self._frames = None
        if c is not None:
            c.close()
