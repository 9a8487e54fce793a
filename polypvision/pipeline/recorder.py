"""Recording the live annotated view to H.264 on its own thread.

The inference thread hands results to :meth:`Recorder.submit` without blocking; a named
writer thread encodes them. The queue is bounded; if the disk cannot keep up, frames are
dropped from the recording and counted rather than stalling the live view. ``stop``
finishes the file (temporary name, then rename); ``abort`` and any write error leave no
partial file under the final name.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

from polypvision.recording import VideoWriter, check_output_path
from polypvision.types import FrameResult

log = logging.getLogger(__name__)

QUEUE_FRAMES = 64
STOP_TIMEOUT_S = 10.0
_END = object()


class Recorder:
    def __init__(self, path: Path, width: int, height: int, fps: float) -> None:
        self.path = check_output_path(Path(path))
        self.writer = VideoWriter(self.path, width, height, fps)
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
        self.dropped = 0
        self.error: BaseException | None = None
        self.t_start = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="pv-recorder", daemon=True)
        self._thread.start()

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t_start

    @property
    def frames(self) -> int:
        return self.writer.frames

    def submit(self, result: FrameResult) -> None:
        if self.error is not None:
            return
        try:
            self.queue.put_nowait(result.annotated)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if self.error is None:
                try:
                    self.writer.write(item)
                except Exception as exc:  # disk full, folder removed: reported by stop()
                    log.error("recording failed: %s", exc)
                    self.error = exc

    def _finish(self) -> None:
        self.queue.put(_END)
        self._thread.join(STOP_TIMEOUT_S)

    def stop(self) -> Path:
        """Finish the file and move it into place; raises OutputError if writing failed."""
        self._finish()
        if self.error is not None:
            self.writer.abort()
            from polypvision.errors import OutputError

            raise OutputError(f"recording to {self.path} failed: {self.error}; nothing was saved")
        return self.writer.commit()

    def abort(self) -> None:
        self._finish()
        self.writer.abort()
