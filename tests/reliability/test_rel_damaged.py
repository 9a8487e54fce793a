"""A damaged stretch in the middle of a recording (issue 16, item 1).

A clip with random bytes written over 40 % of the way in: every frame FFmpeg can decode comes
out, in order, including all those after the damage; the count of lost frames is the true one;
the exit status and the summary say the export is partial, and ``--strict`` refuses to publish
it over an earlier, complete export. The desktop app plays past the damage the same way.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from relhelpers import (
    assert_one_error_line,
    damage,
    decode_all,
    ffmpeg_decodable,
    lines,
    partials,
    run_cli,
    synthetic_frames,
    write_video,
)

from polypvision.sources.synthetic import read_stamp

N = 100


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> tuple[Path, int]:
    """100 stamped frames, a keyframe every 10, index at the front; 3 KB of noise at 40 %."""
    d = tmp_path_factory.mktemp("damaged")
    clip = write_video(
        d / "clean.mp4", synthetic_frames(N), gop=10, options={"movflags": "+faststart"}
    )
    bad = damage(clip, d / "damaged.mp4", at=0.4, nbytes=3000)
    decodable = ffmpeg_decodable(bad)
    assert 0.6 * N < decodable < N, decodable  # damaged, but most of it decodes
    return bad, decodable


def test_damaged_middle_exports_every_decodable_frame_and_says_partial(
    tmp_path, toy_model, damaged
):
    bad, decodable = damaged
    out, log = tmp_path / "out.mp4", tmp_path / "l.jsonl"
    r = run_cli("annotate", bad, "-o", out, "--model", toy_model, "--log", log, "--quiet")
    assert r.returncode == 3, r.stderr  # written, but partial: a script can tell
    assert "Traceback" not in r.stderr
    stamps = [read_stamp(f) for f in decode_all(out)]
    assert len(stamps) == decodable  # every frame FFmpeg decodes, not only those before the damage
    assert stamps == sorted(stamps) and stamps[-1] == N - 1  # in order, through to the end
    lost = N - decodable
    assert (
        f"decoded {decodable} of {N}" in r.stderr
        and f"{lost} frame(s) could not be decoded" in r.stderr
    )
    assert f"{lost} unreadable frame(s) skipped" in r.stdout and "PARTIAL" in r.stdout
    summary = json.loads((tmp_path / "l.meta.json").read_text())["summary"]
    assert (
        summary["complete"] is False
        and summary["unreadable"] == lost
        and summary["expected_frames"] == N
    )
    assert len(log.read_text().splitlines()) == decodable


def test_strict_never_replaces_a_complete_export_with_a_partial_one(tmp_path, toy_model, damaged):
    bad, _ = damaged
    out, log = tmp_path / "out.mp4", tmp_path / "l.jsonl"
    out.write_bytes(b"the complete export of yesterday")
    log.write_bytes(b'{"frame": 0}\n')
    r = run_cli(
        "annotate", bad, "-o", out, "--model", toy_model, "--log", log, "--strict", "--quiet"
    )
    line = assert_one_error_line(r, "--strict: nothing was written", code=3)
    assert "partial export" in line
    assert (
        out.read_bytes() == b"the complete export of yesterday"
        and log.read_bytes() == b'{"frame": 0}\n'
    )
    assert partials(tmp_path) == []


def test_input_cut_short_while_exporting_is_a_partial_export(tmp_path, toy_model, clip_faststart):
    """The input shrinks under a running export (a copy still in progress, a share dropping):
    what was there comes out, reported as partial; with strict, nothing replaces the old export."""
    from polypvision.model.session import Segmenter
    from polypvision.pipeline.annotate import Incomplete, Sinks, annotate
    from polypvision.pipeline.processor import FrameProcessor
    from polypvision.recording import VideoWriter
    from polypvision.sources import VideoFileSource

    src_path = tmp_path / "copying.mp4"
    src_path.write_bytes(clip_faststart.read_bytes())
    seg = Segmenter(toy_model, "cpu")
    results = {}
    for strict in (False, True):
        out = tmp_path / f"out-{strict}.mp4"
        out.write_bytes(b"complete earlier export")
        src = VideoFileSource(src_path)
        src.open()
        with open(src_path, "r+b") as fh:  # cut to 40 % after open, before most frames are read
            fh.truncate(int(len(clip_faststart.read_bytes()) * 0.4))
        try:
            results[strict] = annotate(
                src,
                FrameProcessor(seg),
                Sinks(video=VideoWriter(out, 160, 120, 10.0)),
                strict=strict,
            )
        except Incomplete as exc:
            results[strict] = exc
        finally:
            src.close()
            src_path.write_bytes(clip_faststart.read_bytes())
    rep = results[False]
    assert rep.complete is False and rep.expected == 60 and 0 < rep.frames < 60
    assert len(decode_all(tmp_path / "out-False.mp4")) == rep.frames
    assert isinstance(results[True], Incomplete)
    assert (tmp_path / "out-True.mp4").read_bytes() == b"complete earlier export"
    assert partials(tmp_path) == []


def test_the_app_plays_and_seeks_past_the_damage(toy_model, damaged):
    """The live view (the app's schedule) reads through the damaged stretch to the real end,
    instead of stopping there with "End of clip"."""
    from polypvision.model.session import Segmenter
    from polypvision.pipeline.live import LiveRunner
    from polypvision.pipeline.processor import FrameProcessor
    from polypvision.sources import VideoFileSource

    bad, decodable = damaged
    src = VideoFileSource(bad)
    src.open()
    seen: list[int] = []
    runner = LiveRunner(
        src,
        FrameProcessor(Segmenter(toy_model, "cpu")),
        paced=False,
        mode="sync",
        on_result=lambda r: seen.append(read_stamp(r.frame.image)),
    )
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while not runner.ended and time.monotonic() < deadline and runner.error is None:
            time.sleep(0.02)
        assert runner.ended and runner.error is None
        assert runner.position == decodable - 1  # the last decodable frame, not the damage
        # The reader ends as soon as it has read the last frame; the model may still be on an
        # earlier one, and a seek now would clear the last frame from its hand-off. Wait for the
        # last frame's result (a condition, not a duration) before seeking.
        deadline = time.monotonic() + 10
        while (not seen or seen[-1] != N - 1) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert seen and seen[-1] == N - 1, "the clip's last frame is shown at its end"
        runner.seek(90)  # a frame after the damage
        deadline = time.monotonic() + 10
        while (not seen or seen[-1] != 90) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        runner.stop()
    assert max(seen) == N - 1 and seen[-1] == 90
    assert src.unreadable == N - decodable and len(lines("\n".join(src.warnings))) == 1
