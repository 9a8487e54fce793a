"""Reviewing a clip (issue 23, defect 7): after a seek no overlay of another place of the clip
is kept, and a paused or stepped frame shows the mask playback and the export give it."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
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


# -- a reviewed frame shows the export's mask ------------------------------------------------
class Masks:
    """A sink that keeps every frame's mask: what the export draws, frame by frame."""

    name, needs_image = "masks", False

    def __init__(self) -> None:
        self.masks: dict[int, np.ndarray] = {}

    def write(self, result) -> None:
        self.masks[result.index] = result.mask.copy()

    def prepare(self, summary) -> None:
        pass

    def publish(self) -> None:
        return None

    def abort(self) -> None:
        pass


def _export_masks(clip, processor) -> dict[int, np.ndarray]:
    """The masks the offline schedule (export, scan) gives the clip, from its first frame."""
    from polypvision.pipeline.engine import run_offline
    from polypvision.sources import VideoFileSource

    sink = Masks()
    with VideoFileSource(clip) as src:
        run_offline(src, processor.clone(), [sink])
    return sink.masks


def _own_mask_of(runner, index: int) -> np.ndarray:
    """The mask drawn on frame ``index`` when it is shown with its own result (paused)."""
    got: list = []

    def arrived() -> bool:
        item = runner.take_display()
        if item is not None:
            got.append(item)
        return bool(
            got
            and got[-1].frame.index == index
            and got[-1].overlay is not None
            and got[-1].overlay.index == index
        )

    assert until(arrived), f"frame {index} with its own mask never reached the display"
    return got[-1].overlay.mask


def until(cond, timeout_s: float = 20.0) -> bool:
    """Poll ``cond`` (a wait for the workers, not a timing assertion)."""
    wake = threading.Event()
    for _ in range(int(timeout_s / 0.01)):
        if cond():
            return True
        wake.wait(0.01)
    return cond()


@pytest.mark.parametrize("synchronous", [False, True])
def test_a_paused_stepped_or_sought_frame_shows_the_exports_mask(tmp_path, toy_model, synchronous):
    from polypvision.demo import write_synthetic_clip
    from polypvision.viewer.controller import SessionController

    clip = write_synthetic_clip(tmp_path / "c.mp4", 40, 160, 120, 25.0, stamp=True)
    s = SessionController(provider="cpu", output_dir=lambda: tmp_path, synchronous=synchronous)
    try:
        s.load_model(toy_model)
        s.open(str(clip))
        r = s.player.runner
        export = _export_masks(clip, s.player.processor)
        assert len(export) == 40
        # the smoothing matters on this clip: a frame on its own gets another mask
        alone = s.player.processor.clone()
        fresh = alone.process([_frame(clip, 20)], render=False)[0].mask
        assert not np.array_equal(fresh, export[20])

        assert until(lambda: r.position >= 3)
        s.toggle_play()  # pause while it plays: the frame on screen, with the export's mask
        assert until(lambda: r.paused and r.position >= 0)
        here = r.position
        stepped_on: list[int] = []
        assert np.array_equal(_own_mask_of(r, here), export[here])
        for action, index in (
            (lambda: s.seek(20), 20),  # far from the last frame analysed
            (lambda: s.step(1), 21),  # the next frame: the smoothing goes on
            (lambda: s.step(1), 22),
            (lambda: s.step(-1), 21),  # back
            (lambda: s.seek(4), 4),  # near the start
            (lambda: s.seek(37), 37),
        ):
            replayed = s.player.processor.replayed
            action()
            mask = _own_mask_of(r, index)
            if index in (21, 22) and s.player.processor.replayed == replayed:
                stepped_on.append(index)  # nothing replayed: the smoothing went on
            assert np.array_equal(mask, export[index]), (
                f"frame {index}: {int((mask != export[index]).sum())} pixels differ from the export"
            )
        assert stepped_on == [21, 22, 21]  # a step back restores the state kept for 20
        # new settings while paused: the frame is redrawn with the export's mask under them
        before = export[37]
        s.apply_overlay(replace(s.overlay, threshold=0.7))
        export = _export_masks(clip, s.player.processor)
        assert not np.array_equal(export[37], before)  # the threshold changes the mask
        assert np.array_equal(_own_mask_of(r, 37), export[37])
    finally:
        s.close()


def _frame(clip, index: int):
    from polypvision.sources import VideoFileSource

    with VideoFileSource(clip) as src:
        src.seek(index)
        return src.read()
