"""Frame sources and the one function that turns a user's SOURCE string into one.

SOURCE forms: a video file; a folder of frames or a printf pattern (``frames/%d.png``);
a capture device (``0``, ``/dev/video0``, or ``device:0``); a stream URL (``rtsp://``,
``udp://``, ``http://`` ...); ``synthetic`` / ``synthetic:live`` for generated frames;
``demo`` for the bundled demo clip.

A path that exists is always that file or folder, never a keyword: a file called ``demo``,
``0`` or ``synthetic`` in the current folder is read as the file. The keywords stay reachable
as ``builtin:demo``, ``builtin:synthetic``, ``builtin:synthetic:live`` and ``device:0``.
"""

from __future__ import annotations

import re
from pathlib import Path

from polypvision.errors import SourceError
from polypvision.sources.base import FrameSource
from polypvision.sources.file import VideoFileSource
from polypvision.sources.frames import FrameFolderSource, is_frame_pattern
from polypvision.sources.live import CaptureSource, LiveSource, StreamSource, list_capture_devices
from polypvision.sources.synthetic import LiveSyntheticSource, SyntheticSource

__all__ = [
    "BUILTIN",
    "CaptureSource",
    "FrameFolderSource",
    "FrameSource",
    "LiveSource",
    "LiveSyntheticSource",
    "StreamSource",
    "SyntheticSource",
    "VideoFileSource",
    "input_paths",
    "list_capture_devices",
    "open_source",
    "source_kind",
]

BUILTIN = "builtin:"  # the unambiguous spelling of a keyword: builtin:demo, builtin:synthetic
KEYWORDS = {"demo": "demo", "synthetic": "synthetic", "synthetic:live": "synthetic"}


def _exists(s: str) -> bool:
    try:
        return bool(s) and Path(s).exists()
    except (OSError, ValueError):
        return False


def _keyword(s: str) -> str | None:
    """The keyword ``s`` names (``demo``, ``synthetic[:live]``),
    unless a path of that name exists."""
    if s.startswith(BUILTIN):
        return KEYWORDS.get(s[len(BUILTIN) :])
    return KEYWORDS.get(s) if not _exists(s) else None


def source_kind(spec: str) -> str:
    """Classify a SOURCE string: file, frames, device, stream, synthetic or demo."""
    s = str(spec)
    kw = _keyword(s)
    if kw is not None:
        return kw
    if s.lower().startswith(StreamSource.SCHEMES):
        return "stream"
    if s.startswith("device:"):
        return "device"
    if _exists(s):
        return "frames" if Path(s).is_dir() else "file"
    if s.isdigit() or re.fullmatch(r"/dev/video\d+", s):
        return "device"
    if is_frame_pattern(s):
        return "frames"
    return "file"


def input_paths(spec: str) -> tuple[Path, ...]:
    """The paths an export must never write to for ``spec``: its file, its folder of frames, or
    its frame pattern (every file the pattern matches)."""
    kind = source_kind(spec)
    if kind == "demo":
        from polypvision.demo import demo_clip_path

        return (demo_clip_path(),)
    if kind in ("file", "frames"):
        return (Path(spec),)
    return ()


DEFAULT_FPS = 25.0


def make_source(
    spec: str,
    *,
    fps: float | None = None,
    width: int | None = None,
    height: int | None = None,
    fourcc: str | None = None,
) -> FrameSource:
    """Build (but do not open) the source for ``spec``. Raises SourceError for nonsense.

    ``fps`` is the playback rate of a folder of frames or a synthetic clip (default 25) and,
    for a capture device, the rate to ask it for; every capture setting left None keeps the
    device's own default, each independently of the others.
    """
    spec = str(spec)
    kind = source_kind(spec)
    if kind == "demo":
        from polypvision.demo import demo_clip_path

        return VideoFileSource(demo_clip_path())
    if kind == "synthetic":
        live = spec.endswith(":live")
        return (
            LiveSyntheticSource(fps=fps or DEFAULT_FPS)
            if live
            else SyntheticSource(fps=fps or DEFAULT_FPS)
        )
    if kind == "stream":
        return StreamSource(spec)
    if kind == "device":
        dev = spec.split(":", 1)[1] if spec.startswith("device:") else spec
        return CaptureSource(dev, width=width, height=height, fps=fps, fourcc=fourcc)
    if kind == "frames":
        return FrameFolderSource(spec, fps=fps or DEFAULT_FPS)
    if not spec:
        raise SourceError(
            "no input given; pass a video file, a folder of frames, a device or a URL"
        )
    return VideoFileSource(spec)


def open_source(spec: str, **kwargs) -> FrameSource:
    src = make_source(spec, **kwargs)
    src.open()
    return src
