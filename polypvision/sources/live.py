"""Live sources: a capture device (index or /dev/videoN) or a network stream URL.

A named grabber thread reads the device as fast as it delivers and keeps only the newest
frame in a one-slot hand-off: a consumer that falls behind gets the latest picture, and every
frame overwritten before it was taken is counted in ``dropped``. When the device stops
delivering ("signal lost": a cable pulled, a stream cut) the grabber releases it and retries
with exponential backoff, and frames resume when it comes back; what a cut stream's decoder
still held and a new connection's first burst are held back, not shown as live pictures
(``discarded``). A device that does not report its frame rate is timed over its first frames
(``extra["fps_measured"]``), never recorded at a guessed rate. An exception in the grabber
(a driver bug) ends it with status "failed" and is raised by the next ``read()``, so the
pipeline reports it instead of waiting forever on a source that still says "ok".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import cv2

from polypvision.errors import SourceError
from polypvision.model.processing import to_bgr
from polypvision.sources.base import FrameSource, now
from polypvision.types import Frame, SourceInfo

log = logging.getLogger(__name__)

LOST_AFTER_FAILURES = 10
BACKOFF_START_S = 0.25
STALL_FRAMES = 5  # as the live view's 'signal lost' (pipeline.live, which sources never import)
STALL_MIN_S = 0.25
BACKOFF_MAX_S = 4.0
STOP_TIMEOUT_S = 1.0  # a healthy grabber stops within one frame; a stalled one is left to finish
# A device that does not say its frame rate (CAP_PROP_FPS 0, common for capture cards and
# streams) is timed over its first frames: a guessed rate would record a 60 fps card at 30.
MEASURE_FRAMES = 12
MEASURE_TIMEOUT_S = 1.0
FALLBACK_FPS = 30.0


class Capture(Protocol):
    """What the grabber needs of a capture: ``cv2.VideoCapture``, or a stand-in for tests."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's spelling

    def read(self) -> tuple[bool, Any]: ...

    def get(self, prop: int) -> float: ...

    def release(self) -> None: ...


class LiveSource(FrameSource):
    """Shared grabber-thread logic; subclasses say how to open the OpenCV capture."""

    live = True

    def __init__(self, open_timeout_s: float = 10.0) -> None:
        super().__init__()
        self.open_timeout_s = open_timeout_s
        self._cap: Capture | None = None
        self._cond = threading.Condition()
        self._latest: tuple[Any, float] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status = "ok"
        self._index = 0
        self._t0 = 0.0
        self.reconnects = 0
        self.discarded = 0  # stale or buffered frames held back after a stall or a reconnect
        self.grabbed = 0
        self.error: BaseException | None = None
        self._times: list[float] | None = None  # arrival times, while the rate is measured
        # How the grabber waits between reconnect attempts: True ends it. Tests inject a clock-free
        # fake to check the backoff without sleeping through it.
        self.wait_backoff: Callable[[float], bool] = self._stop.wait

    # subclasses -----------------------------------------------------------------------------
    def _make_capture(self) -> Capture:
        raise NotImplementedError

    def _describe(self) -> str:
        raise NotImplementedError

    # lifecycle ------------------------------------------------------------------------------
    def open(self) -> SourceInfo:
        cap = self._make_capture()
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"cannot open {self._describe()}: no device or stream answered; check it is "
                "connected"
            )
        ok, img = cap.read()
        if not ok or img is None:
            cap.release()
            raise SourceError(
                f"{self._describe()} opened but delivered no frame; check the device or stream"
            )
        self._cap = cap
        h, w = img.shape[:2]
        fps = cap.get(cv2.CAP_PROP_FPS)
        reported = float(fps) if fps and 0 < fps < 1000 else None
        granted = self._granted(cap)
        self.error, self._status, self._latest = None, "ok", None  # a reopen starts afresh
        self._times = [] if reported is None else None
        self._t0 = now()
        self._put(img)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._grab_loop, name=f"pv-grab-{type(self).__name__}", daemon=True
        )
        self._thread.start()
        measured = self._measure_fps() if reported is None else None
        if reported is None and measured is None:
            self.warnings.append(
                f"{self._describe()} does not report its frame rate and could not be timed; "
                f"recording at {FALLBACK_FPS:g} fps"
            )
        self.info = SourceInfo(
            description=self._describe(),
            width=w,
            height=h,
            fps=reported or measured or FALLBACK_FPS,
            frame_count=None,
            live=True,
            seekable=False,
            extra={**granted, "fps_measured": measured is not None},
        )
        return self.info

    def _measure_fps(self) -> float | None:
        """The rate of the first frames the grabber delivers (None: too few came in time)."""
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    self._times is not None
                    and len(self._times) >= MEASURE_FRAMES
                    or self.error is not None
                ),
                MEASURE_TIMEOUT_S,
            )
            times, self._times = self._times or [], None
        if len(times) < 3 or times[-1] <= times[0]:
            return None
        fps = (len(times) - 1) / (times[-1] - times[0])
        return round(fps, 2) if 0 < fps < 1000 else None

    def _granted(self, cap: Capture) -> dict[str, Any]:
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC) or 0)
        code = "".join(chr((fourcc >> (8 * i)) & 0xFF) for i in range(4)) if fourcc else ""
        return {
            "granted_width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "granted_height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            "granted_fps": float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
            "granted_fourcc": code.strip("\x00"),
        }

    def _put(self, img: Any) -> None:
        with self._cond:
            if self._latest is not None:
                self.dropped += 1
            t = now()
            self._latest = (img, t)
            self.grabbed += 1
            if self._times is not None and len(self._times) < MEASURE_FRAMES:
                self._times.append(t)
            self._cond.notify()

    def _grab_loop(self) -> None:
        try:
            self._grab_frames()
        except BaseException as exc:  # handed to the reader: read() raises it
            log.error("%s: the grabber failed: %s", self._describe(), exc)
            with self._cond:
                self.error = exc
                self._status = "failed"
                self._cond.notify_all()
        finally:
            if self._stop.is_set() or self.error is not None:
                cap, self._cap = self._cap, None
                if cap is not None:
                    cap.release()

    @property
    def stall_s(self) -> float:
        """How long a read may block before what it returns is no longer live (the same bound
        as the view's 'signal lost': five frame intervals, never under STALL_MIN_S)."""
        fps = self.info.fps if self.info is not None else 0.0
        return max(STALL_MIN_S, STALL_FRAMES / fps if fps > 0 else STALL_MIN_S)

    def _grab_frames(self) -> None:
        """Read, hand out the newest frame, reconnect with backoff when the signal goes.

        After a read that blocked past :attr:`stall_s` (a stream's read timeout) or a reconnect,
        frames are held back until they have come steadily for ``stall_s``: what a decoder
        still held when the stream was cut, or the burst a new connection delivers, is not
        the live picture. Held frames that never go out are counted in ``discarded``, not in
        ``dropped``, so an outage is one gap in a recording and no jump in the dropped count.
        """
        failures = 0
        backoff = BACKOFF_START_S
        held: Any = None
        held_since: float | None = None
        lost_at: float | None = None
        while not self._stop.is_set():
            cap = self._cap
            t_read = now()
            ok, img = cap.read() if cap is not None else (False, None)
            t = now()
            if ok and img is not None:
                failures, backoff = 0, BACKOFF_START_S
                if held_since is None and t - t_read > self.stall_s:
                    held_since = t  # a read that blocked: what it returns may be stale
                    lost_at = lost_at if lost_at is not None else t_read
                if held_since is not None:
                    self.discarded += held is not None
                    held = img
                    if t - held_since < self.stall_s:
                        continue
                    img, held, held_since = held, None, None
                if self._status != "ok" or lost_at is not None:
                    log.info(
                        "%s: signal back%s (%d stale or buffered frames discarded so far)",
                        self._describe(),
                        f" after {t - lost_at:.1f} s" if lost_at is not None else "",
                        self.discarded,
                    )
                    lost_at = None
                self._status = "ok"
                self._put(img)
                continue
            failures += 1
            if held is not None:  # frames from before the cut: never the live picture
                self.discarded += 1
            held, held_since = None, None
            if failures < LOST_AFTER_FAILURES and cap is not None:
                continue
            if self._status == "ok":
                log.warning("%s: signal lost; retrying", self._describe())
                lost_at = lost_at if lost_at is not None else t_read
            self._status = "signal lost"
            if cap is not None:
                cap.release()
                self._cap = None
            if self.wait_backoff(backoff):
                break
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            self._status = "reconnecting"
            try:
                new = self._make_capture()
            except Exception as exc:  # a driver error while the device is away
                log.debug("reopen failed: %s", exc)
                continue
            if new.isOpened():
                self._cap = new
                self.reconnects += 1
                failures = 0
                held_since = now()  # a new connection's first burst is held back too
            else:
                new.release()
                self._status = "signal lost"

    def read(self, timeout_s: float | None = None) -> Frame | None:
        """The newest frame; blocks until one arrives, the timeout passes, or close().

        Raises SourceError when the grabber died (its exception is the cause)."""
        with self._cond:
            while self._latest is None and not self._stop.is_set() and self.error is None:
                if (
                    not self._cond.wait(timeout=timeout_s if timeout_s is not None else 0.5)
                    and timeout_s is not None
                ):
                    return None
            if self.error is not None and self._latest is None:
                raise SourceError(f"{self._describe()} failed: {self.error}") from self.error
            if self._latest is None or self._stop.is_set():
                return None
            img, t = self._latest
            self._latest = None
        frame = Frame(self._index, to_bgr(img), t, t - self._t0)
        self._index += 1
        return frame

    @property
    def status(self) -> str:
        return "ended" if self._stop.is_set() else self._status

    def stats(self) -> dict[str, Any]:
        return {
            **super().stats(),
            "reconnects": self.reconnects,
            "discarded": self.discarded,
            "grabbed": self.grabbed,
            "status": self.status,
        }

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(STOP_TIMEOUT_S)
            if t.is_alive():
                # The grabber is stuck inside cap.read() (a stalled stream waits for its read
                # timeout); releasing the capture under it crashes OpenCV, so the grabber
                # releases it itself when the read returns (see _grab_loop).
                return
        self._thread = None
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


class CaptureSource(LiveSource):
    """A capture card or webcam: OpenCV index or /dev/videoN, with requested format."""

    def __init__(
        self,
        device: int | str,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        fourcc: str | None = None,
    ) -> None:
        super().__init__()
        self.device = device
        self.requested: dict[str, Any] = {
            "width": width,
            "height": height,
            "fps": fps,
            "fourcc": fourcc,
        }

    def _describe(self) -> str:
        return f"capture device {self.device}"

    def _make_capture(self) -> cv2.VideoCapture:
        dev = self.device
        if isinstance(dev, str) and not dev.isdigit() and not Path(dev).exists():
            raise SourceError(
                f"capture device {dev} does not exist; list devices with 'polypvision devices'"
            )
        cap = cv2.VideoCapture(int(dev) if isinstance(dev, str) and dev.isdigit() else dev)
        r = self.requested
        if r["fourcc"]:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*r["fourcc"][:4].ljust(4)))
        if r["width"]:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, r["width"])
        if r["height"]:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, r["height"])
        if r["fps"]:
            cap.set(cv2.CAP_PROP_FPS, r["fps"])
        return cap


class StreamSource(LiveSource):
    """A network stream (rtsp://, udp://, http(s)://), decoded by FFmpeg and treated as live."""

    SCHEMES = (
        "rtsp://",
        "rtsps://",
        "rtmp://",
        "udp://",
        "tcp://",
        "http://",
        "https://",
        "srt://",
    )

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def _describe(self) -> str:
        return f"stream {self.url}"

    def _make_capture(self) -> cv2.VideoCapture:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            5000,
        ]
        return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)


def list_capture_devices(max_index: int = 10) -> list[str]:
    """Video devices present (Linux /dev/video*), for the device picker."""
    return sorted((str(p) for p in Path("/dev").glob("video*")), key=lambda s: int(s[10:] or 0))[
        :max_index
    ]
