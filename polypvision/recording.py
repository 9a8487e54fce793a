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
import os
import shutil
import tempfile
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from polypvision.errors import OutputError
from polypvision.types import FrameResult

log = logging.getLogger(__name__)


def check_output_path(path: Path, inputs: tuple[Path, ...] = ()) -> Path:
    """Refuse outputs that cannot be written or that would overwrite an input."""
    path = Path(path)
    for inp in inputs:
        try:
            if inp.exists() and path.exists() and path.resolve() == inp.resolve():
                raise OutputError(f"output {path} is the input itself; choose another output path")
            if path.resolve() == inp.resolve():
                raise OutputError(f"output {path} is the input itself; choose another output path")
        except OSError:
            pass
    if path.exists() and path.is_dir():
        raise OutputError(f"output {path} is a folder; give a file name such as {path / 'annotated.mp4'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder {parent} is not writable; choose another output path")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def _temp_beside(final: Path, suffix: str) -> Path:
    """A hidden temporary file in the destination's folder (so the final rename is atomic)."""
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial" + suffix, dir=final.parent or ".")
    os.close(fd)
    os.chmod(name, _FILE_MODE)  # mkstemp makes 0600; outputs get the usual permissions
    return Path(name)


class VideoWriter:
    """H.264 MP4 through PyAV (libx264, yuv420p); OpenCV mp4v when PyAV is missing.

    Odd frame sizes are padded by one pixel (yuv420p needs even sizes); frames whose size
    differs from the first frame's (a resolution change mid-stream) are resized to it. Frames
    are stamped one frame apart unless ``write_image`` is given a time slot (``pts``, in frames
    at ``fps``): the recorder stamps capture times, so a gap stays a gap when played back.
    """

    name = "video"
    needs_image = True

    def __init__(self, path: Path, width: int, height: int, fps: float, crf: int = 20,
                 preset: str = "veryfast") -> None:
        self.path = Path(path)
        self.width, self.height = width, height
        self.fps = fps
        self.frames = 0
        self.resized = 0
        self.next_pts = 0
        self._pts = 0
        # write() runs on the writer thread, abort() on whoever stops the export: never both at
        # once (PyAV crashes the process when a container is closed under an encode).
        self._lock = threading.RLock()
        self._closed = False
        try:
            import av  # before the temporary file exists: the first import is slow
        except ImportError:
            av = None
        self._tmp = _temp_beside(self.path, self.path.suffix or ".mp4")
        self._ew, self._eh = width + (width % 2), height + (height % 2)
        self._pad = np.zeros((self._eh, self._ew, 3), np.uint8) if (self._ew, self._eh) != (width, height) else None
        self._yuv = np.empty((self._eh * 3 // 2, self._ew), np.uint8)
        self.backend = "pyav-h264" if av is not None else "opencv-mp4v"
        try:
            if av is not None:
                self._open_av(av, crf, preset)
            else:
                log.warning("PyAV is not installed: writing MPEG-4 Part 2 (mp4v) with OpenCV instead of H.264")
                self._cv = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (self._ew, self._eh))
                if not self._cv.isOpened():
                    raise OSError("OpenCV could not open a video writer")
        except OSError as exc:
            self._discard()
            raise OutputError(f"cannot write {self.path}: {exc}") from None
        except BaseException:  # Ctrl-C while the encoder opens: no orphan temporary file
            self._discard()
            raise

    def _open_av(self, av, crf: int, preset: str) -> None:
        # faststart puts the index (moov) first: the file streams, and a copy cut short
        # stays decodable up to the cut.
        self._container = av.open(str(self._tmp), mode="w", format="mp4", options={"movflags": "+faststart"})
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream("libx264", rate=rate)
        stream.width, stream.height = self._ew, self._eh
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset}
        stream.codec_context.time_base = 1 / rate
        self._stream = stream
        self._av = av

    def write(self, result: FrameResult) -> None:
        """The sink interface: the result's annotated frame, next in line."""
        self.write_image(result.annotated)

    def write_image(self, bgr: np.ndarray, pts: int | None = None) -> None:
        """Encode one BGR frame at time slot ``pts`` (default: the next one; never earlier)."""
        with self._lock:
            if self._closed:
                raise OutputError(f"cannot write {self.path}: the export was already stopped")
            self._pts = self.next_pts if pts is None else max(int(pts), self.next_pts)
            self._write(bgr)
            self.next_pts = self._pts + 1

    def _write(self, bgr: np.ndarray) -> None:
        if bgr.shape[0] != self.height or bgr.shape[1] != self.width:
            bgr = cv2.resize(bgr, (self.width, self.height), interpolation=cv2.INTER_AREA)
            self.resized += 1
        if self._pad is not None:
            self._pad[: self.height, : self.width] = bgr
            bgr = self._pad
        try:
            if self.backend == "pyav-h264":
                # OpenCV's BGR->I420 (BT.601, limited range, as swscale's default) costs about a
                # fifth of letting swscale convert bgr24 inside the encoder.
                cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420, dst=self._yuv)
                frame = self._av.VideoFrame.from_ndarray(self._yuv, format="yuv420p")
                frame.pts = self._pts
                for packet in self._stream.encode(frame):
                    self._container.mux(packet)
            else:
                self._cv.write(bgr)
        except OSError as exc:  # disk full, folder removed: say which output, in one line
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}; "
                              "check that its folder still exists and the disk has space") from None
        self.frames += 1

    def _finish_encoder(self) -> None:
        if self.backend == "pyav-h264":
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        else:
            self._cv.release()

    def commit(self) -> Path:
        """Flush, close and move the file into place."""
        self.prepare()
        return Path(self.publish())

    def prepare(self, summary: dict[str, Any] | None = None) -> None:
        """Flush and close the encoder; the file stays under its temporary name.

        Exports prepare every sink first and publish (rename) only when all are complete, so
        a sink that fails late cannot leave a new video next to an old log.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._finish_encoder()
            except OSError as exc:
                self._discard()
                raise OutputError(f"cannot finish {self.path}: {exc.strerror or exc}") from None

    def publish(self) -> str:
        try:
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self._discard()
            raise OutputError(f"cannot finish {self.path}: {exc.strerror or exc}") from None
        return str(self.path)

    def _discard(self) -> None:
        with contextlib.suppress(OSError):
            self._tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        """Stop writing and remove the temporary file; the final path is untouched."""
        with self._lock:
            if self._closed:  # already flushed by prepare(): only the file is left to remove
                self._discard()
                return
            self._closed = True
            self._abort()

    def _abort(self) -> None:
        try:
            if self.backend == "pyav-h264":
                self._container.close()
            else:
                self._cv.release()
        except Exception:  # the encoder may already be broken: removal matters, not the close
            pass
        self._discard()


class DetectionLog:
    """One JSON line per frame, plus a JSON sidecar with the model, its contract and settings."""

    name = "log"
    needs_image = False

    def __init__(self, path: Path, sidecar: dict[str, Any]) -> None:
        self.path = Path(path)
        self.sidecar_path = self.path.with_name(self.path.stem + ".meta.json")
        self.sidecar = sidecar
        self._tmp = _temp_beside(self.path, ".jsonl")
        self._fh = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed in commit/abort
        self.lines = 0

    def write(self, result: FrameResult) -> None:
        d = result.detection
        rec = {"frame": result.index, "t": round(result.frame.pts_s, 4), "polyp": d.present,
               "area": round(d.area_fraction, 5), "boxes": [list(b) for b in d.boxes],
               "peak": round(d.peak_probability, 4), "latency_ms": round(result.processing_ms, 2)}
        if result.frame.name is not None:
            rec["name"] = result.frame.name
        try:
            self._fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
        except OSError as exc:
            raise OutputError(f"cannot write the log {self.path}: {exc.strerror or exc}; "
                              "check that its folder still exists and the disk has space") from None
        self.lines += 1

    def commit(self, summary: dict[str, Any]) -> None:
        self.prepare(summary)
        self.publish()

    def prepare(self, summary: dict[str, Any]) -> None:
        """Close the lines file and write the sidecar, both still under temporary names."""
        try:
            self._fh.close()
            self._tmp_side = _temp_beside(self.sidecar_path, ".json")
            self._tmp_side.write_text(json.dumps({**self.sidecar, "summary": summary}, indent=2), encoding="utf-8")
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot write the log {self.path}: {exc.strerror or exc}") from None

    def publish(self) -> str:
        try:
            os.replace(self._tmp, self.path)
            os.replace(self._tmp_side, self.sidecar_path)
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot write the log {self.path}: {exc.strerror or exc}") from None
        return str(self.path)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()
        self._tmp.unlink(missing_ok=True)
        side = getattr(self, "_tmp_side", None)
        if side is not None:
            side.unlink(missing_ok=True)


def _check_replaceable(folder: Path, protect: tuple[Path | None, ...]) -> None:
    """commit() replaces the masks folder as a whole: refuse a folder that is, or holds, an input
    or another output, or that holds anything but the PNG masks of an earlier export."""
    target = folder.resolve()
    for p in protect:
        if p is not None and (Path(p).resolve() == target or target in Path(p).resolve().parents):
            raise OutputError(f"--masks {folder} would replace {p}; choose a separate folder for the masks")
    if folder.is_dir():
        foreign = sorted(e.name for e in os.scandir(folder) if not (e.is_file() and e.name.lower().endswith(".png")))
        if foreign:
            raise OutputError(f"--masks {folder} already holds files that are not masks ({foreign[0]}); "
                              "choose a new or empty folder")


class MaskWriter:
    """One binary PNG per frame (0/255), named by frame index or by the input file's stem."""

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
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}.", suffix=".partial", dir=parent))
        os.chmod(self._tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; outputs get the usual permissions
        self.count = 0

    def write(self, result: FrameResult) -> None:
        name = result.frame.name if result.frame.name is not None else f"{result.index:06d}"
        if not cv2.imwrite(str(self._tmp / f"{name}.png"), result.mask):
            raise OutputError(f"cannot write mask PNGs into {self._tmp.parent}; is the disk full?")
        self.count += 1

    def prepare(self, summary: dict[str, Any] | None = None) -> None:
        """Every mask is already written under the temporary folder."""

    def publish(self) -> str:
        self.commit()
        return str(self.folder)

    def commit(self) -> None:
        old = None
        if self.folder.exists():
            old = self.folder.with_name(f".{self.folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.folder, old)
        os.replace(self._tmp, self.folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
