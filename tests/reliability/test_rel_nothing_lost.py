"""Nothing lost, proved by decoding: every frame the input can decode comes out once, in order,
with one log line and one mask each, whatever the batch size and options.

The 640x480 end-to-end case is
``tests/test_annotate.py::test_annotate_640_clip_every_frame_in_order``;
a truncated input is
``test_rel_inputs.py::test_truncated_at_40_percent_exports_every_decodable_frame``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from relhelpers import decode_all, partials, write_video

from polypvision.cli import main
from polypvision.sources.synthetic import SyntheticClip, read_stamp


@pytest.mark.parametrize("batch", [1, 4, 7])
def test_every_frame_once_in_order_log_and_masks(tmp_path, toy_model, clip_stamped, batch):
    n = len(decode_all(clip_stamped))
    assert n == 25
    out, log, masks = tmp_path / "o.mp4", tmp_path / "l.jsonl", tmp_path / "m"
    rc = main(
        [
            "annotate",
            str(clip_stamped),
            "-o",
            str(out),
            "--model",
            str(toy_model),
            "--log",
            str(log),
            "--masks",
            str(masks),
            "--batch",
            str(batch),
            "--quiet",
        ]
    )
    assert rc == 0
    frames = decode_all(out)
    assert [read_stamp(f) for f in frames] == list(range(n))
    recs = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["frame"] for r in recs] == list(range(n))
    assert [r["t"] for r in recs] == pytest.approx([i / 10 for i in range(n)], abs=0.002)
    assert sorted(p.name for p in masks.iterdir()) == [f"{i:06d}.png" for i in range(n)]
    side = json.loads((tmp_path / "l.meta.json").read_text())
    assert side["summary"]["frames"] == n and side["summary"]["unreadable"] == 0
    assert not partials(tmp_path)


def test_blackout_export_keeps_every_frame_in_order(tmp_path, toy_model):
    """--blackout reads the first frame to find the field of view, then rewinds: frame 0 must come
    out once and nothing shift. The corner stamp is blacked out, so match frames by content."""
    clip_src = SyntheticClip(160, 120)
    clip = write_video(
        tmp_path / "in.mp4", [clip_src.frame(i * 7) for i in range(20)]
    )  # distinct frames
    ref = decode_all(clip)
    out = tmp_path / "o.mp4"
    assert (
        main(
            [
                "annotate",
                str(clip),
                "-o",
                str(out),
                "--model",
                str(toy_model),
                "--blackout",
                "--style",
                "contour",
                "--opacity",
                "0",
                "--quiet",
            ]
        )
        == 0
    )
    got = decode_all(out)
    assert len(got) == len(ref) == 20
    centre = (slice(30, 90), slice(50, 110))  # inside the field of view
    for k, g in enumerate(got):
        err = [
            np.mean((g[centre].astype(np.float32) - r[centre].astype(np.float32)) ** 2) for r in ref
        ]
        assert int(np.argmin(err)) == k, (k, err)
