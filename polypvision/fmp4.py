"""Fragmented MP4: what is left of a recording whose writer died, made playable.

A recording is written as a fragmented MP4 (an index-free header, then one ``moof`` + ``mdat``
pair per second of video), so a process killed mid-recording, or a disk that filled, leaves a
file whose complete fragments play. Only the last fragment can be cut short; :func:`salvage`
trims the file to the end of the last complete one, which every player then reads to the end.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">I4s")


def _boxes(fh, size: int):
    """(type, start, end) of each top-level box; stops at the first one cut short."""
    pos = 0
    while pos + 8 <= size:
        fh.seek(pos)
        length, kind = _HEADER.unpack(fh.read(8))
        if length == 1:
            length = struct.unpack(">Q", fh.read(8))[0]
        elif length == 0:  # "to the end of the file": only the writer knows whether it is complete
            return
        if length < 8 or pos + length > size:
            return
        yield kind, pos, pos + length
        pos += length


def complete_end(path: Path) -> tuple[int, int]:
    """(bytes up to the end of the last complete fragment, number of complete fragments) of a
    fragmented MP4; (0, 0) when ``path`` is not one (no header with fragment defaults)."""
    size = os.path.getsize(path)
    end, fragments, fragmented, moof = 0, 0, False, False
    with open(path, "rb") as fh:
        for kind, start, stop in _boxes(fh, size):
            if kind == b"moov":
                fh.seek(start)
                fragmented = b"mvex" in fh.read(min(stop - start, 1 << 20))
                end = stop
            elif kind == b"moof":
                moof = True
            elif kind == b"mdat" and moof and fragmented:
                end, fragments, moof = stop, fragments + 1, False
            elif kind in (b"mfra", b"sidx", b"styp", b"free") and fragments:
                end = stop
    return (end, fragments) if fragmented else (0, 0)


def duration_s(path: Path) -> float:
    """Seconds of video in a (fragmented) MP4, from its packets' timestamps (nothing decoded)."""
    import av

    last = 0.0
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        for packet in c.demux(stream):
            if packet.pts is not None and packet.time_base is not None:
                last = max(last, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    return last


def salvage(path: Path) -> float | None:
    """Trim a fragmented MP4 to its last complete fragment; its seconds of video, or None when
    nothing playable is in it (not a fragmented MP4, or no complete fragment yet)."""
    end, fragments = complete_end(path)
    if fragments == 0:
        return None
    if end < os.path.getsize(path):
        os.truncate(path, end)
    try:
        return duration_s(path)
    except Exception as exc:  # salvaged bytes that FFmpeg still refuses: keep them, say so
        log.info("salvaged %s but cannot read its length: %s", path, exc)
        return 0.0
