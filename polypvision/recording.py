"""Sinks: the annotated video, the per-frame detection log, and per-frame mask PNGs.

Each implements the engine's one sink interface (:class:`polypvision.pipeline.engine.Sink`):
``write`` a FrameResult, then ``prepare`` + ``publish``, or ``abort``. Every sink writes to a
temporary name beside its destination and renames only when the whole export succeeded;
``abort`` removes the temporary output. So a failure, a cancel or Ctrl-C leaves nothing under
the final name, and an existing file there is not touched until the new one is complete.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import threading
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from polypvision.errors import OutputError
from polypvision.fileio import fsync_path
from polypvision.output_paths import check_output_path
from polypvision.partials import Partial
from polypvision.types import FrameResult

__all__ = [
    "DetectionLog",
    "MaskWriter",
    "VideoWriter",
    "check_output_path",
    "container_for",
    "letterbox",
]

log = logging.getLogger(__name__)


CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
TICKS_PER_S = 90000  # the encoder's time base: exact for 24, 25, 30, 50, 60 and 30000/1001 fps


def container_for(path: Path) -> str:
    """The container a video file's name asks for (MP4 unless it says .mov or .mkv)."""
    return CONTAINERS.get(Path(path).suffix.lower(), "mp4")


def letterbox(bgr: np.ndarray, width: int, height: int) -> np.ndarray:
    """``bgr`` scaled to fit ``width`` x ``height`` with its aspect ratio kept, centred on black:
    a frame of another size is never squashed."""
    h, w = bgr.shape[:2]
    scale = min(width / w, height / h)
    tw, th = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    out = np.zeros((height, width, 3), np.uint8)
    x, y = (width - tw) // 2, (height - th) // 2
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out[y : y + th, x : x + tw] = cv2.resize(bgr, (tw, th), interpolation=interp)
    return out


class VideoWriter:
    """H.264 through PyAV (libx264, yuv420p) in MP4, MOV or Matroska (PyAV is required).

    Frames carry their own times: an export writes each frame at its source timestamp (a
    variable-frame-rate input keeps its timing, so the video's clock matches the log's ``t``),
    the recorder at its capture time slot (``write_image(pts=...)``, in frames at ``fps``).
    Odd frame sizes are padded by one pixel (yuv420p needs even sizes); a frame whose size
    differs from the video's is letterboxed into it (aspect ratio kept, counted in
    ``letterboxed``); ``sar`` keeps a non-square pixel aspect ratio (PAL 720x576 shows at 4:3).
    ``fragmented`` writes a fragmented MP4 (one fragment a second, flushed as it completes),
    which stays playable up to the last complete fragment when the process dies or the disk
    fills; a clean ``prepare`` finishes it like any other file.
    """

    name = "video"
    needs_image = True

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fps: float,
        crf: int = 20,
        preset: str = "veryfast",
        *,
        sar: Fraction | None = None,
        fragmented: bool = False,
    ) -> None:
        self.path = Path(path)
        self.width, self.height = width, height
        self.fps = fps
        self.frames = 0
        self.letterboxed = 0
        self.sizes: Counter[str] = Counter()
        self.next_pts = 0
        self.sar = sar if sar is not None and sar > 0 and sar != 1 else None
        self.fragmented = fragmented
        self._pts = 0  # in ticks of 1/TICKS_PER_S
        self._last_pts = -1
        self._step = max(1, round(TICKS_PER_S / fps)) if fps > 0 else TICKS_PER_S // 25
        # write() runs on the writer thread, abort() on whoever stops the export: never both at
        # once (PyAV crashes the process when a container is closed under an encode).
        self._lock = threading.RLock()
        self._closed = False
        import av  # before the temporary file exists: the first import is slow

        self._ew, self._eh = width + (width % 2), height + (height % 2)
        self._pad = (
            np.zeros((self._eh, self._ew, 3), np.uint8)
            if (self._ew, self._eh) != (width, height)
            else None
        )
        self._yuv = np.empty((self._eh * 3 // 2, self._ew), np.uint8)
        self.backend = "pyav-h264"
        # The temporary file last, and its removal armed on the very next line: until this
        # constructor returns, no caller holds the writer to abort it.
        self._partial = Partial(self.path, self.path.suffix or ".mp4")
        try:
            self._tmp = self._partial.path
            self._open_av(av, crf, preset)
        except OSError as exc:
            self._discard()
            raise OutputError(f"cannot write {self.path}: {exc}") from None
        except BaseException:  # Ctrl-C while the encoder opens: no orphan temporary file
            self._discard()
            raise

    def _open_av(self, av, crf: int, preset: str) -> None:
        fmt = container_for(self.path)
        options = {}
        if fmt in ("mp4", "mov"):
            # faststart puts the index (moov) first: the file streams, and a copy cut short
            # stays decodable up to the cut. A recording is fragmented instead: its index
            # grows with it, flushed a fragment at a time.
            options = (
                {"movflags": "+frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}
                if self.fragmented
                else {"movflags": "+faststart"}
            )
        self._container = av.open(str(self._tmp), mode="w", format=fmt, options=options)
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream("libx264", rate=rate)
        stream.width, stream.height = self._ew, self._eh
        stream.pix_fmt = "yuv420p"
        opts = {"crf": str(crf), "preset": preset}
        if self.fragmented:  # a keyframe, hence a fragment, every second
            opts["g"] = str(max(1, round(self.fps)))
        stream.options = opts
        stream.codec_context.time_base = Fraction(1, TICKS_PER_S)
        if self.sar is not None:
            stream.codec_context.sample_aspect_ratio = self.sar
        self._stream = stream
        self._av = av

    def write(self, result: FrameResult) -> None:
        """The sink interface: the result's annotated frame, at its source timestamp."""
        if result.annotated is None:
            raise ValueError("VideoWriter needs drawn frames (a sink with needs_image)")
        self.write_at(result.annotated, result.frame.pts_s)

    def write_at(self, bgr: np.ndarray, t_s: float) -> None:
        """Encode one BGR frame at ``t_s`` seconds (a time not after the previous frame's
        becomes one frame interval after it: broken timestamps degrade to a constant rate)."""
        with self._lock:
            self._check_open()
            pts = round(t_s * TICKS_PER_S) if math.isfinite(t_s) else self._last_pts + self._step
            self._pts = pts if pts > self._last_pts else self._last_pts + self._step
            self._write(bgr)
            self._last_pts = self._pts
            self.next_pts = max(self.next_pts, math.floor(self._pts / self._step) + 1)

    def write_image(self, bgr: np.ndarray, pts: int | None = None) -> None:
        """Encode one BGR frame at time slot ``pts`` (frames at ``fps``; default: the next one,
        never an earlier one)."""
        with self._lock:
            self._check_open()
            slot = self.next_pts if pts is None else max(int(pts), self.next_pts)
            self._pts = max(
                round(slot * TICKS_PER_S / self.fps) if self.fps > 0 else slot * self._step,
                self._last_pts + 1,
            )
            self._write(bgr)
            self._last_pts = self._pts
            self.next_pts = slot + 1

    def _check_open(self) -> None:
        if self._closed:
            raise OutputError(f"cannot write {self.path}: the export was already stopped")

    def _write(self, bgr: np.ndarray) -> None:
        h, w = bgr.shape[:2]
        self.sizes[f"{w}x{h}"] += 1
        if h != self.height or w != self.width:
            bgr = letterbox(bgr, self.width, self.height)
            self.letterboxed += 1
        if self._pad is not None:
            self._pad[: self.height, : self.width] = bgr
            bgr = self._pad
        try:
            # OpenCV's BGR->I420 (BT.601, limited range, as swscale's default) is much
            # cheaper than letting swscale convert bgr24 inside the encoder.
            cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420, dst=self._yuv)
            frame = self._av.VideoFrame.from_ndarray(self._yuv, format="yuv420p")
            frame.pts = self._pts
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except OSError as exc:  # disk full, folder removed: say which output, in one line
            raise OutputError(
                f"cannot write {self.path}: {exc.strerror or exc}; "
                "check that its folder still exists and the disk has space"
            ) from None
        self.frames += 1

    @property
    def resized(self) -> int:
        """Frames of another size than the video's (letterboxed into it)."""
        return self.letterboxed

    def facts(self) -> dict[str, Any]:
        """What the summary and the sidecar say about the frames this video received."""
        out: dict[str, Any] = {"video_size": f"{self.width}x{self.height}"}
        if len(self.sizes) > 1:
            out["frame_sizes"] = dict(self.sizes.most_common())
            out["letterboxed"] = self.letterboxed
        if self.sar is not None:
            out["pixel_aspect"] = f"{self.sar.numerator}:{self.sar.denominator}"
        return out

    def _finish_encoder(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def commit(self) -> Path:
        """Flush, close and move the file into place."""
        self.prepare()
        return Path(self.publish())

    def prepare(self, summary: dict[str, Any] | None = None) -> None:
        """Flush and close the encoder and sync the file; it stays under its temporary name.

        Exports prepare every sink first and publish (rename) only when all are complete, so
        a sink that fails late cannot leave a new video next to an old log.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._finish_encoder()
                fsync_path(self._tmp)
            except OSError as exc:
                self._discard()
                raise OutputError(f"cannot finish {self.path}: {exc.strerror or exc}") from None

    def publish(self) -> str:
        try:
            self._partial.publish(self.path)
        except OSError as exc:
            self._discard()
            raise OutputError(f"cannot finish {self.path}: {exc.strerror or exc}") from None
        return str(self.path)

    def salvage(self) -> float | None:
        """After a failed write: keep what a fragmented file holds up to its last complete
        fragment under the final name. Its seconds of video, or None (nothing kept)."""
        from polypvision.fmp4 import salvage

        with self._lock:
            if not self._closed:
                self._closed = True
                with contextlib.suppress(Exception):  # the muxer may fail again on a full disk
                    self._finish_encoder()
            seconds = salvage(self._tmp) if self.fragmented and self._tmp.exists() else None
            if seconds is None:
                self._discard()
                return None
            try:
                self._partial.publish(self.path)
            except OSError:
                self._discard()
                return None
            return seconds

    def _discard(self) -> None:
        self._partial.discard()

    def abort(self) -> None:
        """Stop writing and remove the temporary file; the final path is untouched."""
        with self._lock:
            if self._closed:  # already flushed by prepare(): only the file is left to remove
                self._discard()
                return
            self._closed = True
            self._abort()

    def _abort(self) -> None:
        # The encoder may already be broken: removal matters, not the close.
        with contextlib.suppress(Exception):
            self._container.close()
        self._discard()


class DetectionLog:
    """One JSON line per frame, plus a JSON sidecar with the model, its contract and settings."""

    name = "log"
    needs_image = False

    def __init__(self, path: Path, sidecar: dict[str, Any]) -> None:
        self.path = Path(path)
        self.sidecar_path = sidecar_path(self.path)
        self.sidecar = sidecar
        self._side: Partial | None = None
        self.lines = 0
        self._partial = Partial(self.path, ".jsonl")
        try:  # until this constructor returns, no caller holds the log to abort it
            self._tmp = self._partial.path
            self._fh = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed in prepare/abort
        except BaseException:
            self._partial.discard()
            raise

    def write(self, result: FrameResult) -> None:
        d = result.detection
        rec = {
            "frame": result.index,
            "t": round(result.frame.pts_s, 4),
            "polyp": d.present,
            "area": round(d.area_fraction, 5),
            "boxes": [list(b) for b in d.boxes],
            "peak": round(d.peak_probability, 4),
            "score": round(d.score, 4),
            "latency_ms": round(result.processing_ms, 2),
        }
        if result.frame.name is not None:
            rec["name"] = result.frame.name
        try:
            self._fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
        except OSError as exc:
            raise OutputError(
                f"cannot write the log {self.path}: {exc.strerror or exc}; "
                "check that its folder still exists and the disk has space"
            ) from None
        self.lines += 1

    def commit(self, summary: dict[str, Any]) -> None:
        self.prepare(summary)
        self.publish()

    def prepare(self, summary: dict[str, Any]) -> None:
        """Close the lines file and write the sidecar, both synced, still under temporary names."""
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._side = Partial(self.sidecar_path, ".json")
            with open(self._side.path, "w", encoding="utf-8") as fh:
                fh.write(json.dumps({**self.sidecar, "summary": summary}, indent=2))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot write the log {self.path}: {exc.strerror or exc}") from None

    def publish(self) -> str:
        try:
            self._partial.publish(self.path)
            if self._side is not None:
                self._side.publish(self.sidecar_path)
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot write the log {self.path}: {exc.strerror or exc}") from None
        return str(self.path)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()
        self._partial.discard()
        if self._side is not None:
            self._side.discard()


def sidecar_path(log: Path) -> Path:
    """Where a log's ``.meta.json`` sidecar goes (checked like any other output)."""
    return log.with_name(log.stem + ".meta.json")


def _check_replaceable(folder: Path, protect: tuple[Path | None, ...]) -> None:
    """commit() replaces the masks folder as a whole: refuse a folder that is, or holds, an input
    or another output, or that holds anything but the PNG masks of an earlier export."""
    target = folder.resolve()
    for p in protect:
        if p is not None and (Path(p).resolve() == target or target in Path(p).resolve().parents):
            raise OutputError(
                f"--masks {folder} would replace {p}; choose a separate folder for the masks"
            )
    if folder.is_dir():
        foreign = sorted(
            e.name
            for e in os.scandir(folder)
            if not (e.is_file() and e.name.lower().endswith(".png"))
        )
        if foreign:
            raise OutputError(
                f"--masks {folder} already holds files that are not masks ({foreign[0]}); "
                "choose a new or empty folder"
            )


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and close it, raising OSError on any failure: the write and the
    close are both checked, since a full disk may only show when the buffer is flushed.
    (``cv2.imwrite`` reports success for a PNG a full disk cut to nothing.)"""
    with open(path, "wb") as fh:
        fh.write(data)


class MaskWriter:
    """One binary PNG per frame (0/255), named by frame index or by the input file's stem.

    Each PNG is encoded in memory and written by Python, so a failed write or close raises.
    A name already written in this export (two inputs that map to one name) is never
    overwritten: the later mask gets the frame index appended and is counted in ``renamed``.
    """

    name = "masks"
    needs_image = False

    def __init__(self, folder: Path, protect: tuple[Path | None, ...] = ()) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputError(f"--masks {self.folder} is a file; give a folder path")
        parent = self.folder.parent
        if not parent.is_dir():
            raise OutputError(f"folder {parent} for --masks does not exist; create it first")
        _check_replaceable(self.folder, protect)
        self._names: set[str] = set()
        self.renamed = 0
        self.count = 0
        self._partial = Partial(self.folder, folder=True)
        self._tmp = self._partial.path

    def write(self, result: FrameResult) -> None:
        name = result.frame.name if result.frame.name is not None else f"{result.index:06d}"
        if name in self._names:
            name = f"{name}_{result.index:06d}"
            self.renamed += 1
        ok, png = cv2.imencode(".png", result.mask)
        if not ok:
            raise OutputError(f"cannot encode the mask of frame {result.index} as PNG")
        try:
            write_file(self._tmp / f"{name}.png", png.tobytes())
        except OSError as exc:
            raise OutputError(
                f"cannot write mask PNGs into {self.folder}: {exc.strerror or exc}; "
                "is the disk full?"
            ) from None
        self._names.add(name)
        self.count += 1

    def facts(self) -> dict[str, Any]:
        return {"masks_renamed": self.renamed} if self.renamed else {}

    def prepare(self, summary: dict[str, Any] | None = None) -> None:
        """Every mask is already written under the temporary folder."""

    def publish(self) -> str:
        self.commit()
        return str(self.folder)

    def commit(self) -> None:
        old = None
        if self.folder.exists():
            # A run killed between these two renames leaves the earlier masks at .NAME.old:
            # partials.sweep puts them back.
            old = self.folder.with_name(f".{self.folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.folder, old)
        self._partial.publish(self.folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        self._partial.discard()
