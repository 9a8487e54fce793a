"""Reviewing a clip (issue 23, defect 7): after a seek no overlay of another place of the clip
is kept, and a paused or stepped frame shows the mask playback and the export give it."""

from __future__ import annotations

import threading

import pytest

from polypvision.model.session import Segmenter
from polypvision.pipeline.live import LiveRunner
from polypvision.pipeline.processor import FrameProcessor
from polypvision.sources import SyntheticSource


@pytest.fixture(scope="module")
def seg(toy_model):
    return Segmenter(toy_model, "cpu")


class SeekBetweenCheckAndStore(LiveRunner):
    """A runner where a seek lands on another thread just after the inference worker compared
    its frame's generation with the current one: the window between the check and the store.

    The seek gets ``window_s`` to finish before the worker goes on (with the check and the
    store atomic it cannot finish before the store, and finishes after it)."""

    window_s = 0.5

    def __init__(self, *a, **k) -> None:
        self.armed = False
        self.seeker: threading.Thread | None = None
        super().__init__(*a, **k)

    @property
    def _generation(self) -> int:  # type: ignore[override]
        value = self._gen
        if self.armed and threading.current_thread().name == "checker":
            self.armed = False
            self.seeker = threading.Thread(target=self._apply, args=([("seek", 3)],))
            self.seeker.start()
            self.seeker.join(self.window_s)
        return value

    @_generation.setter
    def _generation(self, value: int) -> None:
        self._gen = value


def test_a_seek_between_the_check_and_the_store_leaves_no_stale_overlay(seg):
    src = SyntheticSource(frames=10, width=64, height=48)
    src.open()
    runner = SeekBetweenCheckAndStore(src, FrameProcessor(seg), paced=False)
    frame = src.read()
    runner.slot.put((frame, runner._gen))
    runner.on_result = lambda r: runner._stop.set()  # one frame, then the loop returns
    runner.armed = True
    worker = threading.Thread(target=runner._infer_loop, name="checker")
    worker.start()
    worker.join(10)
    assert runner.seeker is not None
    runner.seeker.join(10)
    assert not worker.is_alive() and not runner.seeker.is_alive()
    assert runner._gen == 1  # the seek happened ...
    # ... so the overlay of frame 0, computed before it, must not be the one drawn after it
    assert runner.latest() is None
    src.close()
