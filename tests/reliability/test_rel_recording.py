"""Recordings survive what a procedure room does to them (issue 16, item 5; the app's side is in
``tests/gui/test_gui_reliability.py``).

A recording is a fragmented MP4: a disk that fills mid-recording keeps every complete fragment
under the final name, with one line saying how much and where; a killed process leaves a
temporary file that plays up to its last fragment and that the next run recovers.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from relhelpers import decode_all, partials
from tiny_disk import tiny_disk

from polypvision.model.session import Segmenter
from polypvision.pipeline.compose import LiveFrame
from polypvision.pipeline.processor import FrameProcessor
from polypvision.pipeline.recorder import Recorder, RecordingCutShort
from polypvision.sources.synthetic import SyntheticClip, read_stamp

FPS = 25.0


@pytest.fixture(scope="module")
def proc(toy_model):
    return FrameProcessor(Segmenter(toy_model, "cpu"))


def _record(rec: Recorder, proc: FrameProcessor, frames: int) -> int:
    """Submit ``frames`` pictures captured 1/FPS apart (as fast as the writer takes them); a
    second of them makes a fragment of about 20 KB."""
    from polypvision.types import Frame

    clip = SyntheticClip(320, 240, stamp=True)
    for i in range(frames):
        f = Frame(i, clip.frame(i), 100.0 + i / FPS, i / FPS)
        res = proc.process([f], render=False)[0]
        while rec.pending > 32 and rec.error is None:
            time.sleep(0.005)
        if rec.error is not None:
            return i
        rec.submit(LiveFrame(f, res, proc.settings, None, f.t_capture))
    return frames


class _DiskFillsAfter:
    """The muxer of a recording whose disk fills once the file passes ``limit`` bytes."""

    def __init__(self, real, path: Path, limit: int) -> None:
        self.real, self.path, self.limit = real, path, limit

    def mux(self, packet):
        if self.path.stat().st_size > self.limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.real.mux(packet)

    def close(self):
        raise OSError(
            errno.ENOSPC, "No space left on device"
        )  # the last fragment cannot be written


def _check_cut_short(err: RecordingCutShort, path: Path) -> list[int]:
    assert err.path == path and path.is_file() and err.seconds >= 1.0
    assert "saved in" in str(err) and "No space left on device" in str(err)
    stamps = [read_stamp(f) for f in decode_all(path)]
    assert len(stamps) >= 2 * FPS - 2 and stamps == list(
        range(len(stamps))
    )  # whole fragments, from the start
    assert partials(path.parent) == []
    return stamps


def test_a_disk_that_fills_mid_recording_keeps_what_was_recorded(tmp_path, proc):
    path = tmp_path / "procedure.mp4"
    rec = Recorder(path, 320, 240, FPS)
    video = rec.sink.video
    video._container = _DiskFillsAfter(video._container, video._tmp, 45_000)
    _record(rec, proc, 250)
    with pytest.raises(RecordingCutShort) as err:
        rec.stop()
    _check_cut_short(err.value, path)


def test_a_real_disk_that_fills_mid_recording_keeps_what_was_recorded(tmp_path, proc):
    with tiny_disk(tmp_path / "disk", 64) as disk:
        path = disk / "procedure.mp4"
        rec = Recorder(path, 320, 240, FPS)
        _record(rec, proc, 250)
        with pytest.raises(RecordingCutShort) as err:
            rec.stop()
        _check_cut_short(err.value, path)


_RECORD_AND_WAIT = textwrap.dedent("""
    import sys, time
    sys.path[:0] = {paths!r}
    from test_rel_recording import FPS, _record
    from polypvision.model.session import Segmenter
    from polypvision.pipeline.processor import FrameProcessor
    from polypvision.pipeline.recorder import Recorder
    rec = Recorder({out!r}, 320, 240, FPS)
    _record(rec, FrameProcessor(Segmenter({model!r}, "cpu")), 90)
    while rec.pending:
        time.sleep(0.01)
    print("RECORDED", flush=True)
    time.sleep(60)
""")


@pytest.mark.slow
def test_a_killed_recording_is_recovered_by_the_next_run(tmp_path, toy_model):
    """SIGKILL (a crash, the out-of-memory killer) mid-recording: the temporary file plays up to
    its last complete fragment, and the next run writing there recovers it under its name."""
    from polypvision.partials import sweep

    out = tmp_path / "procedure.mp4"
    here = str(Path(__file__).parent)
    code = _RECORD_AND_WAIT.format(
        paths=[here, str(Path(here).parent)], out=str(out), model=str(toy_model)
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout.readline().strip() == "RECORDED", (
            p.stderr.read() if p.poll() is not None else ""
        )
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
    left = partials(tmp_path)
    assert len(left) == 1 and not out.exists()
    t = time.time() - 60
    os.utime(left[0], (t, t))
    done = sweep(tmp_path)
    assert len(done) == 1 and "recovered" in done[0] and str(out) in done[0]
    stamps = [read_stamp(f) for f in decode_all(out)]
    assert len(stamps) >= 2 * FPS - 2 and stamps == list(
        range(len(stamps))
    )  # 90 sent: 2 whole fragments at least
    assert partials(tmp_path) == []
