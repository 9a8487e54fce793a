"""One export, three doors: ``annotate``, ``batch`` and the app's export turn one input into the
same video (pixel aspect, frame count, encoder settings) and the same per-frame log.

A PAL clip (720x576 with 16:15 pixels, shown at 4:3) is the input: a path that forgets the
pixel aspect writes a squashed video while its sidecar still says 16:15.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from polypvision.cli import main

PAL_FRAMES = 8


def write_pal_clip(path: Path, frames: int = PAL_FRAMES) -> Path:
    """A real PAL H.264 clip: 720x576, sample aspect 16:15, a red disk in frames 2-5."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        st = c.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = 720, 576, "yuv420p"
        st.codec_context.sample_aspect_ratio = Fraction(16, 15)
        st.options = {"preset": "ultrafast"}
        for i in range(frames):
            img = np.full((576, 720, 3), 90, np.uint8)
            if 2 <= i <= 5:
                cv2.circle(img, (300 + 10 * i, 280), 90, (40, 40, 220), -1)
            f = av.VideoFrame.from_ndarray(img, format="bgr24")
            f.pts = i
            for p in st.encode(f):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
    return path


def video_facts(path: Path) -> dict:
    """Frame count, pixel aspect, size, codec and the encoder's own settings line (x264 writes
    every option it ran with into the first frame's SEI)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        sar = s.codec_context.sample_aspect_ratio or s.sample_aspect_ratio
        packets = [bytes(p) for p in c.demux(s) if p.size]
    first = packets[0]
    start = first.find(b"x264 - core")
    options = first[start : first.find(b"\x00", start)] if start >= 0 else b""
    return {
        "frames": len(packets),
        "size": (s.codec_context.width, s.codec_context.height),
        "sar": Fraction(sar.numerator, sar.denominator) if sar else None,
        "codec": s.codec_context.name,
        "x264": options.split(b"options:")[-1].strip(),
    }


def log_without_timing(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        rec.pop("latency_ms", None)
        out.append(rec)
    return out


def sidecar(log: Path) -> dict:
    return json.loads(log.with_suffix(".meta.json").read_text())


@pytest.fixture(scope="module")
def three_exports(tmp_path_factory, toy_model):
    """The same PAL clip through ``annotate``, ``batch`` and the app's ExportJob."""
    import threading

    from polypvision.model.session import Segmenter
    from polypvision.pipeline.processor import FrameProcessor
    from polypvision.viewer.export import ExportJob, plan_export

    root = tmp_path_factory.mktemp("pal")
    clip = write_pal_clip(root / "in" / "pal.mp4")
    # annotate
    a_video, a_log = root / "annotate" / "pal.mp4", root / "annotate" / "pal.jsonl"
    a_video.parent.mkdir()
    rc = main(
        ["annotate", str(clip), "-o", str(a_video), "--log", str(a_log)]
        + ["--model", str(toy_model), "--quiet"]
    )
    assert rc == 0
    # batch
    b_out = root / "batch"
    rc = main(
        ["batch", str(clip.parent), "-o", str(b_out), "--model", str(toy_model)]
        + ["--workers", "1", "--threads", "1", "--quiet"]
    )
    assert rc == 0
    # the app's export (headless)
    (root / "gui").mkdir()
    plan = plan_export(str(clip), root / "gui" / "pal.mp4", log=True)
    done = threading.Event()
    job = ExportJob(
        str(clip), FrameProcessor(Segmenter(toy_model, "cpu")), plan, 25.0, on_exit=done.set
    ).start()
    assert done.wait(60) and job.error is None
    return {
        "annotate": (a_video, a_log),
        "batch": (b_out / "pal.mp4", b_out / "pal.jsonl"),
        "gui": (plan.video, plan.log),
    }


def test_same_video_from_every_export_path(three_exports):
    facts = {name: video_facts(video) for name, (video, _) in three_exports.items()}
    assert facts["annotate"]["frames"] == PAL_FRAMES
    assert facts["annotate"]["sar"] == Fraction(16, 15)
    assert facts["annotate"]["x264"], "the encoder's settings line is there to compare"
    assert facts["batch"] == facts["annotate"]
    assert facts["gui"] == facts["annotate"]


def test_same_log_and_sidecar_settings_from_every_export_path(three_exports):
    logs = {name: log_without_timing(log) for name, (_, log) in three_exports.items()}
    assert len(logs["annotate"]) == PAL_FRAMES
    assert any(r["polyp"] for r in logs["annotate"]), "the red disk is found"
    assert logs["batch"] == logs["annotate"]
    assert logs["gui"] == logs["annotate"]
    sides = {name: sidecar(log) for name, (_, log) in three_exports.items()}
    a = sides["annotate"]
    assert a["summary"]["pixel_aspect"] == "16:15"
    for name in ("batch", "gui"):
        s = sides[name]
        assert s["input_read"] == a["input_read"], name
        assert s["source"] == a["source"], name
        assert s["summary"]["pixel_aspect"] == "16:15", name
        for key in ("threshold", "smoothing", "style", "blackout", "batch", "encoder_preset"):
            assert s["settings"].get(key) == a["settings"].get(key), (name, key)
    assert a["settings"]["encoder_preset"] == "veryfast"
