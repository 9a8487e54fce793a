"""Where exports write (issue 16, items 2, 3, 4 and 6): a full disk under the masks, outputs
named inside the input, device files, and the litter of killed runs.

Nothing is lost and nothing is overwritten: every write is checked (a PNG a full disk cut to
nothing is an error, not a success), an output is refused when it is, lies inside, or matches
an input, or when it exists and is not a regular file; a run killed where it cannot clean up
(SIGKILL, the out-of-memory killer) leaves temporary files that the next run writing to the
same place removes, without touching those of a run still in progress.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from relhelpers import (
    assert_one_error_line,
    decode_all,
    lines,
    partials,
    run_cli,
    stamped_png_folder,
)
from tiny_disk import tiny_disk

# -- 2: a full disk under --masks ------------------------------------------------------------------


def test_masks_on_a_real_full_disk_fail_clearly_and_leave_nothing(tmp_path, toy_model, clip_640):
    """A 32 KB disk for the masks of 30 640x480 frames. cv2.imwrite reported success for masks
    the full disk had cut to 0 bytes (exit 0, most masks empty); now the run stops with one line
    and leaves nothing on that disk or under the video's name."""
    with tiny_disk(tmp_path / "disk", 32) as disk:
        out = tmp_path / "out.mp4"
        r = run_cli(
            "annotate", clip_640, "-o", out, "--masks", disk / "m", "--model", toy_model, "--quiet"
        )
        assert_one_error_line(r, "No space left on device")
        assert "mask" in r.stderr
        assert list(disk.iterdir()) == [] and not out.exists() and partials(tmp_path) == []


# -- 3: outputs that name, or lie inside, the input ------------------------------------------------


def _frames(folder: Path) -> Path:
    return stamped_png_folder(folder, [(64, 48)] * 5)


def _digests(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(
    "case",
    [
        "-o an input frame",
        "--log an input frame",
        "-o a new name in the folder",
        "-o a frame the pattern matches",
        "--log sidecar onto an input",
    ],
)
def test_outputs_never_replace_or_join_the_input_frames(tmp_path, toy_model, clip_small, case):
    frames = _frames(tmp_path / "frames")
    (frames / "take.meta.json").write_bytes(
        clip_small.read_bytes()
    )  # a video whose name a sidecar could hit
    spec, args = {
        "-o an input frame": (frames, ["-o", frames / "4.png"]),
        "--log an input frame": (frames, ["-o", tmp_path / "o.mp4", "--log", frames / "3.png"]),
        "-o a new name in the folder": (frames, ["-o", frames / "annotated.mp4"]),
        "-o a frame the pattern matches": (frames / "%d.png", ["-o", frames / "2.png"]),
        "--log sidecar onto an input": (
            frames / "take.meta.json",
            ["-o", tmp_path / "o.mp4", "--log", tmp_path / "take.jsonl"],
        ),
    }[case]
    if case == "--log sidecar onto an input":  # the input video lies beside the log
        (tmp_path / "take.meta.json").write_bytes(clip_small.read_bytes())
        spec = tmp_path / "take.meta.json"
    before = _digests(frames), spec.read_bytes() if spec.is_file() else b""
    r = run_cli("annotate", spec, *args, "--model", toy_model, "--quiet")
    assert_one_error_line(r, "input")
    assert (_digests(frames), spec.read_bytes() if spec.is_file() else b"") == before
    assert not (tmp_path / "o.mp4").exists() and partials(frames) == [] and partials(tmp_path) == []


# -- 4: outputs that exist and are not regular files -----------------------------------------------


def _device_or_fifo(path: Path, kind: str) -> Path:
    if kind == "fifo":
        os.mkfifo(path)
    else:
        if os.geteuid() != 0:
            pytest.skip("mknod needs root")
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a copy of /dev/null
    return path


@pytest.mark.parametrize("kind", ["character device", "fifo"])
@pytest.mark.parametrize("flag", ["-o", "--log"])
def test_device_files_are_refused_never_replaced(tmp_path, toy_model, clip_small, kind, flag):
    target = _device_or_fifo(tmp_path / ("null.mp4" if flag == "-o" else "null.jsonl"), kind)
    args = ["-o", target] if flag == "-o" else ["-o", tmp_path / "o.mp4", "--log", target]
    r = run_cli("annotate", clip_small, *args, "--model", toy_model, "--quiet")
    assert_one_error_line(r, "not a regular file")
    mode = os.lstat(target).st_mode
    assert stat.S_ISCHR(mode) if kind != "fifo" else stat.S_ISFIFO(mode)  # still the device
    assert not (tmp_path / "o.mp4").exists() and partials(tmp_path) == []


# -- 6: what killed runs leave behind --------------------------------------------------------------


def _start_export(tmp_path: Path, toy_model: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "polypvision",
            "annotate",
            "synthetic",
            "-o",
            str(out),
            "--model",
            str(toy_model),
            "--log",
            str(out.with_suffix(".jsonl")),
            "--masks",
            str(out.with_suffix("")),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _age(paths: list[Path], seconds: float = 3600) -> None:
    t = time.time() - seconds
    for p in paths:
        os.utime(p, (t, t), follow_symlinks=False)


def test_a_killed_export_leaves_litter_that_the_next_run_removes(tmp_path, toy_model, clip_small):
    """SIGKILL (or the out-of-memory killer) mid-export: the hidden temporary files stay; the next
    run writing to that folder removes them and says so, and leaves alone the temporary file of
    a run that is still writing (it holds its lock)."""
    from polypvision.partials import Partial

    out = tmp_path / "out.mp4"
    p = _start_export(tmp_path, toy_model, out)
    try:
        deadline = time.monotonic() + 60
        while len(partials(tmp_path)) < 3 and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        assert p.poll() is None, "the export finished before it could be killed"
        p.kill()
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
    left = partials(tmp_path)
    assert len(left) >= 3 and not out.exists()  # video, log and masks under temporary names
    alive = Partial(tmp_path / "other.mp4", ".mp4")  # a run still writing, in this process
    _age(
        left + [alive.path]
    )  # old enough for the sweep (young ones may be between create and lock)
    r = run_cli("annotate", clip_small, "-o", out, "--model", toy_model, "--quiet")
    assert r.returncode == 0, r.stderr
    notes = [x for x in lines(r.stderr) if x.startswith("polypvision: note: removed")]
    assert len(notes) == len(left), r.stderr
    assert partials(tmp_path) == [alive.path]
    alive.discard()
    assert len(decode_all(out)) == 12


def test_masks_moved_aside_by_a_killed_run_are_put_back(tmp_path, toy_model, clip_small):
    """A run killed between moving the earlier masks aside and putting the new ones in place
    leaves the only copy of the earlier masks at .m.old; the next run restores them."""
    old = tmp_path / ".m.old"
    old.mkdir()
    (old / "000000.png").write_bytes(cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes())
    _age([old])
    r = run_cli("annotate", clip_small, "-o", tmp_path / "o.mp4", "--model", toy_model, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "restored" in r.stderr
    assert (tmp_path / "m" / "000000.png").is_file() and not old.exists()


def test_a_stray_file_named_like_litter_but_unlocked_and_young_is_left_alone(tmp_path):
    """The sweep never removes a temporary file younger than a couple of seconds: its writer
    may be between creating it and taking the lock."""
    from polypvision.partials import sweep

    young = tmp_path / ".out.mp4.abcd1234.partial.mp4"
    young.write_bytes(b"x")
    assert sweep(tmp_path) == [] and young.exists()
