from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from vfr_clip import VFR_PTS_MS, write_vfr_clip

from polypvision.errors import SourceError
from polypvision.sources import (
    FrameFolderSource,
    LiveSyntheticSource,
    VideoFileSource,
    make_source,
    source_kind,
)
from polypvision.sources.frames import natural_key
from polypvision.sources.synthetic import SyntheticClip, read_stamp


def test_source_kinds():
    assert source_kind("rtsp://host/x") == "stream"
    assert source_kind("udp://0.0.0.0:1234") == "stream"
    assert source_kind("0") == "device" and source_kind("/dev/video2") == "device"
    assert source_kind("frames/%04d.png") == "frames"
    assert source_kind("clip.mp4") == "file"
    assert source_kind("demo") == "demo"


def test_video_file_reads_every_frame_in_order(clip_640):
    with VideoFileSource(clip_640) as src:
        assert (src.info.width, src.info.height, src.info.fps) == (640, 480, 25.0)
        frames = list(src)
    assert [f.index for f in frames] == list(range(30))
    assert [read_stamp(f.image) for f in frames] == list(range(30))
    assert frames[5].pts_s == pytest.approx(0.2, abs=0.05)


def test_video_file_seek(clip_640):
    with VideoFileSource(clip_640) as src:
        src.seek(17)
        f = src.read()
    assert f.index == 17 and read_stamp(f.image) == 17


def test_frame_folder_natural_order_and_stray_files(tmp_path):
    clip = SyntheticClip(160, 120, stamp=True)
    for i in (10, 2, 1):
        cv2.imwrite(str(tmp_path / f"{i}.png"), clip.frame(i))
    cv2.imwrite(str(tmp_path / "3.png"), cv2.resize(clip.frame(3), (80, 60)))  # mixed size
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / "4.png").write_bytes(b"broken")  # unreadable image
    src = FrameFolderSource(tmp_path, fps=10)
    src.open()
    frames = list(src)
    assert [f.name for f in frames] == ["1", "2", "3", "10"]
    assert [read_stamp(f.image) for f in frames if f.image.shape[1] == 160] == [1, 2, 10]
    assert frames[2].image.shape == (60, 80, 3)
    assert src.unreadable == 1 and "notes.txt" in src.skipped_files
    assert frames[1].pts_s == pytest.approx(0.1)


def test_frame_pattern(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"f{i:03d}.png"), np.full((8, 8, 3), i * 50, np.uint8))
    src = make_source(str(tmp_path / "f%03d.png"))
    src.open()
    assert [f.name for f in src] == ["f000", "f001", "f002"]


def test_natural_key():
    assert sorted(["10.png", "2.png", "1.png"], key=natural_key) == ["1.png", "2.png", "10.png"]


@pytest.mark.parametrize(
    "name, content, needle",
    [
        ("missing.mp4", None, "not found"),
        ("empty.mp4", b"", "empty"),
        ("junk.mp4", b"\x13\x37" * 5000, "cannot decode"),
        ("notes.txt", b"hello\n" * 100, "cannot decode"),
    ],
)
def test_bad_video_inputs(tmp_path, name, content, needle):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SourceError, match=needle):
        VideoFileSource(path).open()


def test_empty_folder(tmp_path):
    with pytest.raises(SourceError, match="no image frames"):
        FrameFolderSource(tmp_path).open()


def test_live_source_newest_wins_and_counts_drops():
    src = LiveSyntheticSource(fps=200, width=64, height=48)
    src.open()
    try:
        wake = threading.Event()
        while src.grabbed < 12:  # consumer absent: frames pile up in the one slot and are dropped
            wake.wait(0.01)
        f = src.read(timeout_s=2)
        assert f is not None
        assert src.dropped > 5
        g = src.read(timeout_s=2)
        assert g.index == f.index + 1 and g.t_capture > f.t_capture
    finally:
        src.close()
    assert src.read(timeout_s=0.1) is None  # closed sources end


def test_live_source_signal_lost_and_back():
    src = LiveSyntheticSource(fps=100, width=64, height=48, outage=(20, 60))
    src.open()
    seen = set()
    try:
        deadline = time.perf_counter() + 15
        while time.perf_counter() < deadline:
            seen.add(src.status)
            f = src.read(timeout_s=0.2)
            if (
                f is not None
                and src.reconnects >= 1
                and src.status == "ok"
                and "signal lost" in seen
            ):
                break
    finally:
        src.close()
    assert "signal lost" in seen
    assert src.reconnects >= 1


def test_stream_source_over_http(clip_small):
    """A real network stream: the clip served over HTTP on loopback, read as a live source."""
    import functools
    import http.server
    import threading

    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(clip_small.parent)
    )
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    t.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{clip_small.name}"
    src = make_source(url)
    try:
        info = src.open()
        assert info.live and not info.seekable and (info.width, info.height) == (160, 120)
        f = src.read(timeout_s=5)
        assert f is not None and f.image.shape == (120, 160, 3)
    finally:
        src.close()
        server.shutdown()
        server.server_close()


def test_stream_that_does_not_answer():
    src = make_source("http://127.0.0.1:9/none.mp4")  # discard port: nothing listens
    src.open_timeout_s = 2.0
    with pytest.raises(SourceError, match="cannot open stream"):
        src.open()


def test_a_seek_in_a_variable_frame_rate_file_lands_on_the_frame_it_names(tmp_path):
    """After a seek the frame decoded carries its true index (its place in the file's frame
    table), so the label, the timeline and "next detection" agree with a whole-clip pass."""
    clip = write_vfr_clip(tmp_path / "vfr.mp4", VFR_PTS_MS)
    with VideoFileSource(clip) as src:
        whole = [(f.index, read_stamp(f.image), round(f.pts_s, 3)) for f in src]
    assert [w[0] for w in whole] == [w[1] for w in whole] == list(range(40))
    with VideoFileSource(clip) as src:
        for k in (5, 15, 25, 30, 39, 3, 0, 21):
            src.seek(k)
            f = src.read()
            assert (f.index, read_stamp(f.image), round(f.pts_s, 3)) == whole[k], k
            g = src.read()  # and the frames after it keep counting from there
            if k < 39:
                assert (g.index, read_stamp(g.image)) == (k + 1, k + 1)
