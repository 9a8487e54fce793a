"""`polypvision annotate` end to end on real files, and every bad input the issue lists."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest

from polypvision.cli import main
from polypvision.model.session import Segmenter
from polypvision.pipeline.annotate import Cancelled, Sinks, annotate
from polypvision.pipeline.processor import FrameProcessor
from polypvision.recording import DetectionLog, VideoWriter
from polypvision.sources import VideoFileSource
from polypvision.sources.synthetic import read_stamp


def decode_all(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return frames, fps


def test_annotate_640_clip_every_frame_in_order(tmp_path, clip_640, toy_model, capsys):
    out, log, masks = tmp_path / "out.mp4", tmp_path / "log.jsonl", tmp_path / "masks"
    rc = main(
        [
            "annotate",
            str(clip_640),
            "-o",
            str(out),
            "--model",
            str(toy_model),
            "--log",
            str(log),
            "--masks",
            str(masks),
            "--batch",
            "3",
            "--quiet",
        ]
    )
    assert rc == 0
    frames, fps = decode_all(out)
    assert len(frames) == 30 and fps == pytest.approx(25.0)
    assert frames[0].shape == (480, 640, 3)
    assert [read_stamp(f) for f in frames] == list(range(30))
    with av_open(out) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(30))
    assert {"frame", "t", "polyp", "area", "boxes", "peak", "latency_ms"} <= set(lines[0])
    side = json.loads((tmp_path / "log.meta.json").read_text())
    assert side["model"]["contract"]["name"] == "toy-redness" and side["summary"]["frames"] == 30
    pngs = sorted(masks.glob("*.png"))
    assert len(pngs) == 30 and pngs[0].name == "000000.png"
    m = cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED)
    assert m.shape == (480, 640) and set(np.unique(m)) <= {0, 255}
    assert not list(tmp_path.glob(".*partial*")), "no temporary files left behind"


def av_open(path):
    import av

    return av.open(str(path))


def test_annotate_frame_folder_names_masks_by_stem(tmp_path, toy_model):
    folder = tmp_path / "frames"
    folder.mkdir()
    for n in (3, 12, 7):
        cv2.imwrite(str(folder / f"{n}.png"), np.full((60, 90, 3), 40 * (n % 5), np.uint8))
    out, masks = tmp_path / "o.mp4", tmp_path / "m"
    assert (
        main(
            [
                "annotate",
                str(folder),
                "-o",
                str(out),
                "--model",
                str(toy_model),
                "--masks",
                str(masks),
                "--fps",
                "10",
                "--quiet",
            ]
        )
        == 0
    )
    assert sorted(p.stem for p in masks.glob("*.png")) == ["12", "3", "7"]
    frames, fps = decode_all(out)
    assert len(frames) == 3 and fps == pytest.approx(10.0)
    assert frames[0].shape[:2] == (60, 90)


def test_annotate_clinicdb_folder(tmp_path, toy_model, clinicdb):
    out = tmp_path / "c.mp4"
    pattern = str(clinicdb / "images" / "%d.png")
    assert main(["annotate", pattern, "-o", str(out), "--model", str(toy_model), "--quiet"]) == 0
    frames, _ = decode_all(out)
    assert len(frames) == len(list((clinicdb / "images").glob("*.png")))


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "polypvision", *args], capture_output=True, text=True, timeout=120
    )


def _bad_inputs(tmp, clip, model):
    (tmp / "empty.mp4").write_bytes(b"")
    (tmp / "junk.mp4").write_bytes(np.random.default_rng(0).bytes(20000))
    (tmp / "notes.txt").write_text("not a video\n" * 50)
    (tmp / "nofr").mkdir()
    (tmp / "bad.onnx").write_bytes(b"\x08\x01garbage" * 10)
    out = str(tmp / "out.mp4")
    return {
        "missing input": ([str(tmp / "nope.mp4"), "-o", out, "--model", model], "not found"),
        "empty file": ([str(tmp / "empty.mp4"), "-o", out, "--model", model], "empty"),
        "garbage mp4": ([str(tmp / "junk.mp4"), "-o", out, "--model", model], "cannot decode"),
        "text file": ([str(tmp / "notes.txt"), "-o", out, "--model", model], "not a video"),
        "no frames": ([str(tmp / "nofr"), "-o", out, "--model", model], "no image frames"),
        "missing model": (
            [clip, "-o", out, "--model", str(tmp / "none.onnx")],
            "model file not found",
        ),
        "corrupt model": (
            [clip, "-o", out, "--model", str(tmp / "bad.onnx")],
            "not a loadable ONNX",
        ),
        "output dir missing": (
            [clip, "-o", str(tmp / "no" / "o.mp4"), "--model", model],
            "does not exist",
        ),
        "output is input": ([clip, "-o", clip, "--model", model], "input itself"),
        "bad style": (
            [clip, "-o", out, "--model", model, "--style", "glow"],
            "unknown overlay style",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing input",
        "empty file",
        "garbage mp4",
        "text file",
        "no frames",
        "missing model",
        "corrupt model",
        "output dir missing",
        "output is input",
        "bad style",
    ],
)
def test_bad_input_one_line_exit_2_no_output(tmp_path, clip_small, toy_model, case):
    args, needle = _bad_inputs(tmp_path, str(clip_small), str(toy_model))[case]
    before = clip_small.stat().st_mtime_ns
    r = run_cli("annotate", *args, "--quiet")
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("polypvision: error:") and needle in lines[0], lines[0]
    assert not (tmp_path / "out.mp4").exists()
    assert not list(tmp_path.glob(".*partial*"))
    assert clip_small.stat().st_mtime_ns == before


def test_contract_missing_model(tmp_path, clip_small):
    from toy_model import build_toy_model

    m = build_toy_model(tmp_path / "nc.onnx", 64, contract=None)
    r = run_cli("annotate", str(clip_small), "-o", str(tmp_path / "o.mp4"), "--model", str(m))
    assert (
        r.returncode == 2
        and "no 'polypvision' contract" in r.stderr
        and "Traceback" not in r.stderr
    )


class _FailingVideo(VideoWriter):
    """Simulates the disk filling up after a few frames."""

    def write(self, result):
        if self.frames >= 5:
            raise OSError(28, "No space left on device")
        super().write(result)


def test_write_failure_keeps_existing_output_and_removes_temp(tmp_path, clip_640, toy_model):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous export")
    src = VideoFileSource(clip_640)
    src.open()
    proc = FrameProcessor(Segmenter(toy_model, "cpu"))
    sinks = Sinks(
        video=_FailingVideo(out, 640, 480, 25.0), log=DetectionLog(tmp_path / "l.jsonl", {})
    )
    with pytest.raises(OSError, match="No space"):
        annotate(src, proc, sinks, batch=2)
    src.close()
    assert out.read_bytes() == b"previous export"
    assert not (tmp_path / "l.jsonl").exists()
    assert not list(tmp_path.glob(".*partial*"))


def test_cancel_leaves_nothing(tmp_path, clip_640, toy_model):
    out = tmp_path / "out.mp4"
    src = VideoFileSource(clip_640)
    src.open()
    cancel = threading.Event()
    proc = FrameProcessor(Segmenter(toy_model, "cpu"))

    def progress(p):
        if p.done >= 6:
            cancel.set()

    with pytest.raises(Cancelled):
        annotate(
            src,
            proc,
            Sinks(video=VideoWriter(out, 640, 480, 25.0)),
            batch=2,
            cancel=cancel,
            progress=progress,
        )
    src.close()
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_odd_frame_sizes_and_size_change(tmp_path, toy_model):
    folder = tmp_path / "odd"
    folder.mkdir()
    cv2.imwrite(str(folder / "1.png"), np.zeros((47, 63), np.uint8))  # grayscale, odd size
    cv2.imwrite(str(folder / "2.png"), np.zeros((30, 40, 4), np.uint8))  # BGRA, other size
    out = tmp_path / "o.mp4"
    assert (
        main(["annotate", str(folder), "-o", str(out), "--model", str(toy_model), "--quiet"]) == 0
    )
    frames, _ = decode_all(out)
    assert len(frames) == 2


class _LogFailingAtTheEnd(DetectionLog):
    """The disk fills up just as the sidecar is written, after every frame went out."""

    def prepare(self, summary):
        self.abort()
        raise OSError(28, "No space left on device")


def test_late_failure_publishes_nothing(tmp_path, clip_small, toy_model):
    out, log = tmp_path / "out.mp4", tmp_path / "l.jsonl"
    out.write_bytes(b"previous video")
    log.write_text("previous log\n")
    src = VideoFileSource(clip_small)
    src.open()
    sinks = Sinks(video=VideoWriter(out, 160, 120, 10.0), log=_LogFailingAtTheEnd(log, {}))
    with pytest.raises(OSError, match="No space"):
        annotate(src, FrameProcessor(Segmenter(toy_model, "cpu")), sinks, batch=2)
    src.close()
    assert out.read_bytes() == b"previous video", (
        "the video must not be replaced when the log fails"
    )
    assert log.read_text() == "previous log\n"
    assert not list(tmp_path.glob(".*partial*"))
