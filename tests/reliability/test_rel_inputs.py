"""Odd and damaged inputs through ``polypvision annotate``, as a user sees them.

The plain bad inputs (missing path, zero-byte file, random bytes named .mp4, a text file, a
folder with no frames) are covered by
``tests/test_annotate.py::test_bad_input_one_line_exit_2_no_output``;
this file adds the disguised variants and every "odd but valid" input, which must be handled,
not fatal: all decodable frames out, in order, checked by decoding the export.
"""

from __future__ import annotations

import json
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from relhelpers import (
    assert_one_error_line,
    big_stamp,
    decode_all,
    lines,
    partials,
    read_big_stamp,
    run_cli,
    stamped_png_folder,
    synthetic_frames,
    write_video,
)

from polypvision.sources.synthetic import SyntheticClip, read_stamp


def _pyav_decodable(path) -> int:
    """How many frames FFmpeg itself can get out of a (possibly damaged) file."""
    n = 0
    try:
        with av.open(str(path)) as c:
            for _ in c.decode(video=0):
                n += 1
    except av.error.FFmpegError:
        pass
    return n


@pytest.mark.parametrize("case", ["ftyp header then garbage", "text named .mp4", "png named .mp4"])
def test_disguised_inputs_named_mp4(tmp_path, toy_model, case):
    bad = tmp_path / "in.mp4"
    if case == "ftyp header then garbage":
        bad.write_bytes(
            b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"
            + np.random.default_rng(1).bytes(30000)
        )
    elif case == "text named .mp4":
        bad.write_text("Patient: none\nthis is a note, not a video\n" * 40)
    else:
        ok, buf = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
        bad.write_bytes(buf.tobytes())  # a single still image is not a clip
    out = tmp_path / "out.mp4"
    r = run_cli("annotate", bad, "-o", out, "--model", toy_model, "--quiet")
    if case == "png named .mp4":
        # FFmpeg reads a lone image as a one-frame clip whatever its name: handled, and whole.
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert len(decode_all(out)) == 1
        return
    assert_one_error_line(r)
    assert not out.exists() and not partials(tmp_path)


def test_truncated_at_40_percent_exports_every_decodable_frame(tmp_path, toy_model, clip_faststart):
    data = clip_faststart.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.4)])
    decodable = _pyav_decodable(cut)
    assert 0 < decodable < 60
    out, log = tmp_path / "out.mp4", tmp_path / "log.jsonl"
    r = run_cli("annotate", cut, "-o", out, "--model", toy_model, "--log", log, "--quiet")
    assert r.returncode == 3, r.stderr  # written, and partial: a script can tell
    assert "Traceback" not in r.stderr
    warn = [x for x in lines(r.stderr) if "warning" in x.lower()]
    assert len(warn) == 1, r.stderr  # said once, not once by the logger and again by the CLI
    assert f"decoded {decodable} of 60" in warn[0]
    assert f"{60 - decodable} unreadable" in r.stdout and "PARTIAL" in r.stdout
    frames = decode_all(out)
    assert [read_stamp(f) for f in frames] == list(range(decodable))
    recs = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["frame"] for x in recs] == list(range(decodable))
    side = json.loads((tmp_path / "log.meta.json").read_text())
    assert side["summary"]["unreadable"] == 60 - decodable
    assert side["summary"]["complete"] is False and side["summary"]["expected_frames"] == 60


def test_truncated_mp4_without_index_is_a_clear_error(tmp_path, toy_model, clip_stamped):
    """moov at the end (the usual MP4): a 40 % cut loses the index, so no frame is decodable."""
    data = clip_stamped.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.4)])
    assert _pyav_decodable(cut) == 0
    r = run_cli("annotate", cut, "-o", tmp_path / "out.mp4", "--model", toy_model, "--quiet")
    assert_one_error_line(r, "cannot decode")
    assert not (tmp_path / "out.mp4").exists() and not partials(tmp_path)


def _cut_ts(tmp_path):
    # veryfast: with B-frames, as recorders write them (ultrafast has none and hides the bug below)
    ts = write_video(
        tmp_path / "rec.ts", synthetic_frames(40), fmt="mpegts", gop=5, preset="veryfast"
    )
    data = ts.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: int(len(data) * 0.4)])
    return cut, _pyav_decodable(cut)


def test_truncated_transport_stream_exports_what_is_there(tmp_path, toy_model):
    """A recorder's .ts cut off mid-file: no index to lose, so the decodable part comes out."""
    cut, decodable = _cut_ts(tmp_path)
    out = tmp_path / "out.mp4"
    r = run_cli("annotate", cut, "-o", out, "--model", toy_model, "--quiet")
    assert r.returncode == 0, r.stderr
    stamps = [read_stamp(f) for f in decode_all(out)]
    assert len(stamps) == decodable
    assert stamps[: decodable - 1] == list(range(decodable - 1))


def test_truncated_transport_stream_last_frame_is_not_a_repeat(tmp_path, toy_model):
    """OpenCV's reader repeated the previous picture for the damaged last frame of a cut
    MPEG-TS (grab() succeeded, retrieve() returned the stale buffer); PyAV decodes it."""
    cut, decodable = _cut_ts(tmp_path)
    out = tmp_path / "out.mp4"
    assert run_cli("annotate", cut, "-o", out, "--model", toy_model, "--quiet").returncode in (0, 3)
    assert [read_stamp(f) for f in decode_all(out)] == list(range(decodable))


def test_frame_size_change_mid_stream(tmp_path, toy_model):
    """Two H.264 segments of different sizes in one transport stream: every frame comes out."""
    a = [big_stamp(f, i) for i, f in enumerate(synthetic_frames(8, 160, 120, stamp=False))]
    b = [
        big_stamp(f, 8 + i)
        for i, f in enumerate(synthetic_frames(8, 224, 168, start=8, stamp=False))
    ]
    pa = write_video(tmp_path / "a.ts", a, fmt="mpegts")
    pb = write_video(tmp_path / "b.ts", b, fmt="mpegts")
    clip = tmp_path / "switch.ts"
    clip.write_bytes(pa.read_bytes() + pb.read_bytes())
    assert _pyav_decodable(clip) == 16
    out, log = tmp_path / "out.mp4", tmp_path / "l.jsonl"
    r = run_cli("annotate", clip, "-o", out, "--model", toy_model, "--log", log, "--quiet")
    assert r.returncode == 0, r.stderr
    frames = decode_all(out)
    assert len(frames) == 16 and frames[0].shape == (120, 160, 3)
    assert [read_big_stamp(f) for f in frames] == list(range(16))
    assert len(log.read_text().splitlines()) == 16


def _gray_h264(path, n):
    c = av.open(str(path), "w")
    st = c.add_stream("libx264", rate=10)
    st.width, st.height, st.pix_fmt = 160, 120, "gray"
    for i in range(n):
        f = av.VideoFrame.from_ndarray(
            big_stamp(np.full((120, 160), 90, np.uint8), i), format="gray"
        )
        f.pts = i
        for p in st.encode(f):
            c.mux(p)
    for p in st.encode():
        c.mux(p)
    c.close()


def _rgba_mov(path, n):
    c = av.open(str(path), "w")
    st = c.add_stream("png", rate=10)
    st.width, st.height, st.pix_fmt = 160, 120, "rgba"
    for i in range(n):
        img = np.dstack(
            [big_stamp(np.full((120, 160, 3), 90, np.uint8), i), np.full((120, 160), 128, np.uint8)]
        )
        f = av.VideoFrame.from_ndarray(img, format="bgra")
        f.pts = i
        for p in st.encode(f):
            c.mux(p)
    for p in st.encode():
        c.mux(p)
    c.close()


@pytest.mark.parametrize("kind", ["gray H.264", "RGBA PNG-in-MOV"])
def test_grayscale_and_four_channel_videos(tmp_path, toy_model, kind):
    clip = tmp_path / ("g.mp4" if kind == "gray H.264" else "rgba.mov")
    (_gray_h264 if kind == "gray H.264" else _rgba_mov)(clip, 10)
    out = tmp_path / "out.mp4"
    r = run_cli("annotate", clip, "-o", out, "--model", toy_model, "--quiet")
    assert r.returncode == 0, r.stderr
    frames = decode_all(out)
    assert [read_big_stamp(f) for f in frames] == list(range(10))
    assert frames[0].shape == (120, 160, 3)


def test_grayscale_16bit_and_four_channel_frames_in_a_folder(tmp_path, toy_model):
    folder = tmp_path / "frames"
    folder.mkdir()
    base = SyntheticClip(160, 120).frame(0)
    gray = big_stamp(cv2.cvtColor(base, cv2.COLOR_BGR2GRAY), 0)
    cv2.imwrite(str(folder / "0.png"), gray)  # 8-bit grayscale
    cv2.imwrite(
        str(folder / "1.png"), big_stamp(gray.copy(), 1).astype(np.uint16) * 257
    )  # 16-bit grayscale
    cv2.imwrite(str(folder / "2.png"), big_stamp(cv2.cvtColor(base, cv2.COLOR_BGR2BGRA), 2))  # BGRA
    cv2.imwrite(
        str(folder / "3.png"), big_stamp(base.copy(), 3).astype(np.uint16) * 257
    )  # 16-bit colour
    cv2.imwrite(str(folder / "4.tif"), big_stamp(base.copy(), 4))
    out, masks = tmp_path / "out.mp4", tmp_path / "m"
    r = run_cli("annotate", folder, "-o", out, "--model", toy_model, "--masks", masks, "--quiet")
    assert r.returncode == 0, r.stderr
    frames = decode_all(out)
    assert [read_big_stamp(f) for f in frames] == [0, 1, 2, 3, 4]
    assert sorted(p.stem for p in masks.glob("*.png")) == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize("w, h, n", [(64, 48, 12), (3840, 2160, 3)])
def test_tiny_and_4k_frames(tmp_path, toy_model, w, h, n):
    small = synthetic_frames(n, stamp=False)
    frames_in = [
        big_stamp(cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR), i)
        for i, f in enumerate(small)
    ]
    clip = write_video(tmp_path / "in.mp4", frames_in)
    out, masks = tmp_path / "out.mp4", tmp_path / "m"
    r = run_cli("annotate", clip, "-o", out, "--model", toy_model, "--masks", masks, "--quiet")
    assert r.returncode == 0, r.stderr
    frames = decode_all(out)
    assert len(frames) == n and frames[0].shape == (h, w, 3)
    assert [read_big_stamp(f) for f in frames] == list(range(n))
    m = cv2.imread(str(masks / "000000.png"), cv2.IMREAD_UNCHANGED)
    assert m.shape == (h, w)


def test_one_pixel_frames(tmp_path, toy_model):
    """The smallest frames there are: 1x1 colour, 3x5 grey, 2x2 BGRA. Handled, not fatal."""
    folder = tmp_path / "px"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), np.full((1, 1, 3), 200, np.uint8))
    cv2.imwrite(str(folder / "1.png"), np.full((3, 5), 90, np.uint8))
    cv2.imwrite(str(folder / "2.png"), np.full((2, 2, 4), 90, np.uint8))
    out, masks = tmp_path / "o.mp4", tmp_path / "m"
    r = run_cli("annotate", folder, "-o", out, "--model", toy_model, "--masks", masks, "--quiet")
    assert r.returncode == 0, r.stderr
    assert len(decode_all(out)) == 3  # 1x1 is padded to 2x2: H.264 4:2:0 needs even sizes
    assert [cv2.imread(str(masks / f"{i}.png"), cv2.IMREAD_UNCHANGED).shape for i in range(3)] == [
        (1, 1),
        (3, 5),
        (2, 2),
    ]


def test_folder_with_mixed_sizes_and_a_stray_file(tmp_path, toy_model):
    sizes = [(160, 120), (80, 60), (161, 121), (320, 240), (160, 120), (64, 48)]
    folder = stamped_png_folder(tmp_path / "frames", sizes)
    (folder / "README.txt").write_text("exported by the tower")
    (folder / "thumbs.db").write_bytes(b"\x00\x01junk")
    (folder / "7.png").write_bytes(b"not really a png")  # unreadable image
    out, masks, log = tmp_path / "out.mp4", tmp_path / "m", tmp_path / "l.jsonl"
    r = run_cli(
        "annotate",
        folder,
        "-o",
        out,
        "--model",
        toy_model,
        "--masks",
        masks,
        "--log",
        log,
        "--fps",
        "5",
        "--quiet",
    )
    assert r.returncode == 3, r.stderr  # 7.png is lost: a partial export
    assert "Traceback" not in r.stderr
    warn = [x for x in lines(r.stderr) if "warning" in x.lower()]
    assert any("2 non-image file" in x for x in warn), r.stderr
    assert any("7.png" in x for x in warn), r.stderr
    frames = decode_all(out)
    assert len(frames) == len(sizes) and frames[0].shape == (120, 160, 3)
    assert [read_big_stamp(f) for f in frames] == list(range(len(sizes)))
    for i, (w, h) in enumerate(sizes):  # masks at each frame's own size
        assert cv2.imread(str(masks / f"{i}.png"), cv2.IMREAD_UNCHANGED).shape == (h, w)
    assert [json.loads(x)["name"] for x in log.read_text().splitlines()] == [
        str(i) for i in range(len(sizes))
    ]


def _folder_with_two_broken(tmp_path):
    folder = stamped_png_folder(tmp_path / "frames", [(160, 120)] * 10)
    (folder / "0.png").write_bytes(b"broken")
    (folder / "6.png").write_bytes(b"")
    return folder


def test_unreadable_frames_counted_once_with_blackout(tmp_path, toy_model):
    """--blackout looks ahead for the field of view and rewinds; found by this suite: the skipped
    files were counted (and warned about) twice. Each unreadable file: one warning, one count."""
    folder = _folder_with_two_broken(tmp_path)
    out, log = tmp_path / "o.mp4", tmp_path / "l.jsonl"
    r = run_cli(
        "annotate", folder, "-o", out, "--model", toy_model, "--blackout", "--log", log, "--quiet"
    )
    assert r.returncode == 3, r.stderr  # two frames lost: a partial export
    warn = [x for x in lines(r.stderr) if "warning" in x]
    assert sorted(warn) == [
        "polypvision: warning: unreadable frame skipped: 0.png",
        "polypvision: warning: unreadable frame skipped: 6.png",
    ]
    assert "2 unreadable frame(s)" in r.stdout
    assert json.loads((tmp_path / "l.meta.json").read_text())["summary"]["unreadable"] == 2
    assert len(decode_all(out)) == 8


def test_looping_a_folder_does_not_pile_up_warnings(tmp_path, toy_model):
    """The desktop app loops a folder for hours: the unreadable count and warnings stay put."""
    import time

    from polypvision.model.session import Segmenter
    from polypvision.pipeline.live import LiveRunner
    from polypvision.pipeline.processor import FrameProcessor
    from polypvision.sources import FrameFolderSource

    src = FrameFolderSource(_folder_with_two_broken(tmp_path), fps=25)
    src.open()
    got: list = []
    runner = LiveRunner(
        src,
        FrameProcessor(Segmenter(toy_model, "cpu")),
        paced=False,
        loop=True,
        on_result=lambda r: got.append(r.index),
    )
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while len(got) < 40 and time.monotonic() < deadline and runner.error is None:
            time.sleep(0.01)
    finally:
        runner.stop()
    assert runner.error is None and len(got) >= 40
    assert src.unreadable == 2 and len(src.warnings) == 2


def test_variable_frame_rate_file(tmp_path, toy_model):
    pts = [0, 40, 50, 130, 140, 300, 310, 320, 600, 610, 650, 700, 1500, 1510]
    clip = write_video(tmp_path / "vfr.mp4", synthetic_frames(len(pts)), pts_ms=pts)
    with av.open(str(clip)) as c:
        got = [f.pts * f.time_base for f in c.decode(video=0)]
    assert got == [Fraction(p, 1000) for p in pts]  # the input really is VFR
    out, log = tmp_path / "out.mp4", tmp_path / "l.jsonl"
    r = run_cli("annotate", clip, "-o", out, "--model", toy_model, "--log", log, "--quiet")
    assert r.returncode == 0, r.stderr
    assert [read_stamp(f) for f in decode_all(out)] == list(range(len(pts)))
    ts = [json.loads(x)["t"] for x in log.read_text().splitlines()]
    assert ts == pytest.approx([p / 1000 for p in pts], abs=0.002)
