"""Helpers for the reliability suite: run the CLI, decode exports, write small real clips.

Everything is small (160x120, a few dozen frames) so the whole suite stays around a minute on
two busy cores. Clips are real H.264 files written with PyAV, so the decoders under test see
what they see in the field. (A plain module, not conftest.py, so that imports are unambiguous.)
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from polypvision.sources.synthetic import SyntheticClip

BIG_BITS = 8


def run_cli(
    *args: str, timeout: float = 120, env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """``python -m polypvision ARGS`` exactly as a user runs it."""
    if cwd is not None:  # the package under test must stay importable from another folder
        env = dict(env or os.environ)
        root = str(Path(__file__).resolve().parents[2])
        if (Path(root) / "polypvision").is_dir():
            env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "polypvision", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


def lines(text: str) -> list[str]:
    return [x for x in text.splitlines() if x.strip()]


def assert_one_error_line(
    r: subprocess.CompletedProcess, needle: str | None = None, code: int = 2
) -> str:
    """Exit ``code``, exactly one non-empty stderr line, ``polypvision: error:``, no traceback."""
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    got = lines(r.stderr)
    assert len(got) == 1, r.stderr
    if code == 2:
        assert got[0].startswith("polypvision: error:"), got[0]
    if needle is not None:
        assert needle in got[0], got[0]
    return got[0]


def partials(folder: Path) -> list[Path]:
    """Temporary outputs left behind (the sinks name them ``.NAME.*.partial*``)."""
    return sorted(Path(folder).glob(".*partial*"))


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame of a video, BGR, decoded by PyAV's FFmpeg (independent of the OpenCV reader)."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


def big_stamp(img: np.ndarray, index: int) -> np.ndarray:
    """Write ``index`` as 8 full-height-quarter columns: survives scaling, unlike the 8 px stamp."""
    h, w = img.shape[:2]
    for b in range(BIG_BITS):
        img[: h // 4, b * w // BIG_BITS : (b + 1) * w // BIG_BITS] = 255 if (index >> b) & 1 else 0
    return img


def read_big_stamp(img: np.ndarray) -> int:
    h, w = img.shape[:2]
    gray = img.mean(axis=2) if img.ndim == 3 else img
    value = 0
    for b in range(BIG_BITS):
        x0, x1 = b * w // BIG_BITS, (b + 1) * w // BIG_BITS
        cell = gray[h // 16 : h // 4 - h // 16, x0 + (x1 - x0) // 4 : x1 - (x1 - x0) // 4]
        if cell.mean() > 127:
            value |= 1 << b
    return value


def write_video(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: float = 10.0,
    fmt: str | None = None,
    options: dict[str, str] | None = None,
    pts_ms: Sequence[int] | None = None,
    gop: int | None = None,
    preset: str = "ultrafast",
) -> Path:
    """Encode BGR frames to H.264 with PyAV. ``pts_ms`` gives explicit (irregular) timestamps."""
    frames = list(frames)
    h, w = frames[0].shape[:2]
    c = av.open(str(path), "w", format=fmt, options=options or {})
    st = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
    st.width, st.height, st.pix_fmt = w, h, "yuv420p"
    opts = {"crf": "20", "preset": preset}
    if gop:
        opts["g"] = str(gop)
    st.options = opts
    if pts_ms is not None:
        st.codec_context.time_base = Fraction(1, 1000)
    for i, img in enumerate(frames):
        f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
        f.pts = pts_ms[i] if pts_ms is not None else i
        for pk in st.encode(f):
            c.mux(pk)
    for pk in st.encode():
        c.mux(pk)
    c.close()
    return Path(path)


def synthetic_frames(
    n: int, w: int = 160, h: int = 120, start: int = 0, stamp: bool = True
) -> list[np.ndarray]:
    clip = SyntheticClip(w, h, stamp=stamp)
    return [clip.frame(start + i) for i in range(n)]


def stamped_png_folder(folder: Path, sizes: Sequence[tuple[int, int]]) -> Path:
    """Frames 0..n-1 as ``i.png``, frame i at sizes[i], each carrying a scale-proof stamp."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate(sizes):
        img = cv2.resize(SyntheticClip(160, 120).frame(i), (w, h), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"{i}.png"), big_stamp(img, i))
    return folder


def damage(path: Path, out: Path, at: float = 0.4, nbytes: int = 3000, seed: int = 0) -> Path:
    """A copy of ``path`` with ``nbytes`` random bytes written over it at ``at`` of its length."""
    data = bytearray(Path(path).read_bytes())
    pos = int(len(data) * at)
    data[pos : pos + nbytes] = np.random.default_rng(seed).bytes(min(nbytes, len(data) - pos))
    Path(out).write_bytes(bytes(data))
    return Path(out)


def ffmpeg_decodable(path: Path) -> int:
    """Frames FFmpeg gets out of a damaged file when it keeps going past errors (as ``ffmpeg -i``
    does): the most any reader can deliver."""
    n = 0
    with av.open(str(path)) as c:
        for packet in c.demux(video=0):
            with contextlib.suppress(av.error.FFmpegError):
                n += len(packet.decode())
    return n
