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
from dataclasses import dataclass
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


@dataclass
class Fragments:
    """What a fragmented MP4 holds up to its last complete fragment."""

    end: int = 0  # bytes up to the end of the last complete fragment
    count: int = 0  # complete fragments
    timescale: int = 0  # ticks a second of the video track (its mdhd)
    last_start: int = 0  # decode time of the last complete fragment's first frame (its tfdt)


def _field(blob: bytes, name: bytes) -> bytes | None:
    """The payload after a (nested) box's type, found by name: enough for mdhd and tfdt,
    which occur once in the boxes they are read from."""
    at = blob.find(name)
    return blob[at + 4 :] if at >= 0 else None


def _timescale(moov: bytes) -> int:
    body = _field(moov, b"mdhd")
    if body is None or len(body) < 24:
        return 0
    return struct.unpack(">I", body[20:24] if body[0] == 1 else body[12:16])[0]


def _decode_time(moof: bytes) -> int:
    body = _field(moof, b"tfdt")
    if body is None or len(body) < 8:
        return 0
    return struct.unpack(">Q", body[4:12])[0] if body[0] == 1 else struct.unpack(">I", body[4:8])[0]


def scan(path: Path) -> Fragments | None:
    """The complete fragments of a fragmented MP4, or None when ``path`` is not one (no header
    announcing fragments)."""
    size = os.path.getsize(path)
    out, fragmented, moof = Fragments(), False, b""
    with open(path, "rb") as fh:
        for kind, start, stop in _boxes(fh, size):
            if kind in (b"moov", b"moof"):
                fh.seek(start)
                blob = fh.read(min(stop - start, 1 << 20))
                if kind == b"moov":
                    fragmented, out.timescale, out.end = b"mvex" in blob, _timescale(blob), stop
                else:
                    moof = blob
            elif kind == b"mdat" and moof and fragmented:
                out.end, out.count, out.last_start, moof = (
                    stop,
                    out.count + 1,
                    _decode_time(moof),
                    b"",
                )
            elif kind in (b"mfra", b"sidx", b"styp", b"free") and out.count:
                out.end = stop
    return out if fragmented else None


def salvage(path: Path) -> float | None:
    """Trim a fragmented MP4 to its last complete fragment; about how many seconds of video it
    holds, or None when nothing playable is in it (not fragmented, or no complete fragment)."""
    frags = scan(path)
    if frags is None or frags.count == 0:
        return None
    if frags.end < os.path.getsize(path):
        os.truncate(path, frags.end)
    if not frags.timescale:
        return 0.0
    start = frags.last_start / frags.timescale
    # The last fragment lasts about as long as the others did (one keyframe interval).
    return start + (start / (frags.count - 1) if frags.count > 1 else 1.0)
