"""Names that lie, frames and masks that do not match, and time that drifts (issue 16, items 7-9).

- A path that exists is a file, never a keyword: a file called ``demo`` or
  ``synthetic_phantom.mp4`` is read as itself (``builtin:demo`` is the keyword), and a video whose
  name holds ``%`` is a video, not a frame pattern.
- Two files with one stem are two frames with two masks; a folder of mixed sizes is written at
  the size most frames have, the others letterboxed (never squashed), and reported.
- A variable-frame-rate file keeps its timing in the video as in the log; a gap in a numbered
  sequence is reported; a non-square pixel aspect ratio is kept.
"""

from __future__ import annotations

import json
import shutil
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from relhelpers import (
    big_stamp,
    decode_all,
    lines,
    read_big_stamp,
    run_cli,
    stamped_png_folder,
    synthetic_frames,
    write_video,
)

from polypvision.sources.synthetic import SyntheticClip, read_stamp

# -- 7: names that lie -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["demo", "synthetic_phantom.mp4", "synthetic"])
def test_a_file_named_like_a_keyword_is_that_file(tmp_path, toy_model, clip_small, name):
    shutil.copy(clip_small, tmp_path / name)
    r = run_cli(
        "annotate",
        name,
        "-o",
        "out.mp4",
        "--log",
        "out.jsonl",
        "--model",
        toy_model,
        "--quiet",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert [read_stamp(f) for f in decode_all(tmp_path / "out.mp4")] == list(
        range(12)
    )  # the file's 12 frames
    side = json.loads((tmp_path / "out.meta.json").read_text())
    assert side["input_kind"] == "file" and side["input_read"] == str((tmp_path / name).resolve())


def test_the_keywords_stay_reachable_unambiguously(tmp_path):
    from polypvision.sources import SyntheticSource, VideoFileSource, make_source, source_kind

    (tmp_path / "demo").write_bytes(b"x")
    assert source_kind(str(tmp_path / "demo")) == "file"
    assert source_kind("builtin:demo") == "demo" and source_kind("builtin:synthetic") == "synthetic"
    assert isinstance(make_source("builtin:synthetic"), SyntheticSource)
    assert isinstance(make_source(str(tmp_path / "demo")), VideoFileSource)


@pytest.mark.parametrize("name", ["polyp 50%done.mp4", "case_%d.mp4", "100%.mp4"])
def test_a_video_whose_name_holds_a_percent_sign(tmp_path, toy_model, clip_small, name):
    clip = tmp_path / name
    shutil.copy(clip_small, clip)
    r = run_cli("annotate", clip, "-o", tmp_path / "out.mp4", "--model", toy_model, "--quiet")
    assert r.returncode == 0, r.stderr
    assert len(decode_all(tmp_path / "out.mp4")) == 12


# -- 8: frames and masks that do not match ---------------------------------------------------------


def test_two_files_with_one_stem_are_two_frames_with_two_masks(tmp_path, toy_model):
    folder = tmp_path / "frames"
    folder.mkdir()
    clip = SyntheticClip(96, 72)
    for i in range(10):
        cv2.imwrite(str(folder / f"{i}.png"), clip.frame(2 * i))
        cv2.imwrite(str(folder / f"{i}.jpg"), clip.frame(2 * i + 1))
    out, log, masks = tmp_path / "o.mp4", tmp_path / "l.jsonl", tmp_path / "m"
    r = run_cli(
        "annotate",
        folder,
        "-o",
        out,
        "--log",
        log,
        "--masks",
        masks,
        "--model",
        toy_model,
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    recs = [json.loads(x) for x in log.read_text().splitlines()]
    names = [x["name"] for x in recs]
    assert len(recs) == 20 and len(set(names)) == 20 and {"0_png", "0_jpg"} <= set(names)
    assert sorted(p.stem for p in masks.glob("*.png")) == sorted(
        names
    )  # one mask per frame, none replaced
    assert len(decode_all(out)) == 20
    assert any("share a name" in x for x in lines(r.stderr))
    summary = json.loads((tmp_path / "l.meta.json").read_text())["summary"]
    assert summary["shared_stems"]["0"] == ["0.jpg", "0.png"]


def test_mixed_sizes_are_written_at_the_usual_size_and_letterboxed(tmp_path, toy_model):
    """The first frame is a 64x48 thumbnail, one frame is portrait: the video takes the size
    most frames have, a portrait frame keeps its shape (black bars), and it is all reported."""
    sizes = [(64, 48)] + [(320, 240)] * 4 + [(180, 240)]
    folder = stamped_png_folder(tmp_path / "frames", sizes)
    out, log, masks = tmp_path / "o.mp4", tmp_path / "l.jsonl", tmp_path / "m"
    r = run_cli(
        "annotate",
        folder,
        "-o",
        out,
        "--log",
        log,
        "--masks",
        masks,
        "--model",
        toy_model,
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    frames = decode_all(out)
    assert len(frames) == 6 and frames[0].shape == (240, 320, 3)
    assert [read_big_stamp(f) for f in frames[1:5]] == [1, 2, 3, 4]
    portrait = frames[5]
    bar = (320 - 180) // 2
    assert (
        portrait[:, : bar - 4].max() < 30 and portrait[:, -(bar - 4) :].max() < 30
    )  # bars, not a squash
    assert portrait[120:200, bar + 10 : -bar - 10].mean() > 40
    assert any("letterboxed" in x for x in lines(r.stderr))
    summary = json.loads((tmp_path / "l.meta.json").read_text())["summary"]
    assert summary["video_size"] == "320x240" and summary["letterboxed"] == 2
    assert summary["frame_sizes"] == {"320x240": 4, "64x48": 1, "180x240": 1}
    assert cv2.imread(str(masks / "5.png"), cv2.IMREAD_UNCHANGED).shape == (
        240,
        180,
    )  # masks at own size


# -- 9: time that drifts ---------------------------------------------------------------------------


def test_variable_frame_rate_keeps_its_timing_in_the_video(tmp_path, toy_model):
    pts = [0, 40, 50, 130, 140, 300, 310, 320, 600, 610, 650, 700, 1500, 1510]
    clip = write_video(tmp_path / "vfr.mp4", synthetic_frames(len(pts)), pts_ms=pts)
    out, log = tmp_path / "out.mp4", tmp_path / "l.jsonl"
    r = run_cli("annotate", clip, "-o", out, "--model", toy_model, "--log", log, "--quiet")
    assert r.returncode == 0, r.stderr
    with av.open(str(out)) as c:
        video_t = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    log_t = [json.loads(x)["t"] for x in log.read_text().splitlines()]
    assert video_t == pytest.approx(
        [p / 1000 for p in pts], abs=0.002
    )  # the video's clock is the input's
    assert video_t == pytest.approx(log_t, abs=0.002)  # and the log's
    summary = json.loads((tmp_path / "l.meta.json").read_text())["summary"]
    assert summary["variable_frame_rate"]["interval_ms"] == [10.0, 800.0]


def test_a_gap_in_a_numbered_sequence_is_reported(tmp_path, toy_model):
    folder = stamped_png_folder(tmp_path / "frames", [(64, 48)] * 10)
    for n in (4, 7, 8):
        (folder / f"{n}.png").unlink()
    log = tmp_path / "l.jsonl"
    r = run_cli(
        "annotate", folder, "-o", tmp_path / "o.mp4", "--log", log, "--model", toy_model, "--quiet"
    )
    assert r.returncode == 0, r.stderr  # nothing the folder holds was lost: a complete export
    warn = [x for x in lines(r.stderr) if "missing" in x]
    assert len(warn) == 1 and "3 frame number(s) missing" in warn[0] and "(4, 7-8)" in warn[0]
    gaps = json.loads((tmp_path / "l.meta.json").read_text())["summary"]["numbering_gaps"]
    assert gaps["missing"] == 3 and gaps["numbers"] == ["4", "7-8"]


def test_non_square_pixels_keep_their_aspect_ratio(tmp_path, toy_model):
    """PAL 720x576 with 16:15 pixels shows at 4:3;
    written without its pixel aspect it shows at 5:4."""
    clip = tmp_path / "pal.mp4"
    c = av.open(str(clip), "w")
    st = c.add_stream("libx264", rate=25)
    st.width, st.height, st.pix_fmt = 720, 576, "yuv420p"
    st.codec_context.sample_aspect_ratio = Fraction(16, 15)
    st.options = {"preset": "ultrafast"}
    for i in range(4):
        f = av.VideoFrame.from_ndarray(
            big_stamp(np.full((576, 720, 3), 90, np.uint8), i), format="bgr24"
        )
        f.pts = i
        for p in st.encode(f):
            c.mux(p)
    for p in st.encode():
        c.mux(p)
    c.close()
    out, log = tmp_path / "out.mp4", tmp_path / "l.jsonl"
    r = run_cli("annotate", clip, "-o", out, "--log", log, "--model", toy_model, "--quiet")
    assert r.returncode == 0, r.stderr
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert (s.width, s.height) == (720, 576) and s.sample_aspect_ratio == Fraction(16, 15)
        assert s.display_aspect_ratio == Fraction(4, 3)
    assert json.loads((tmp_path / "l.meta.json").read_text())["summary"]["pixel_aspect"] == "16:15"
