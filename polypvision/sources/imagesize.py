"""An image file's width and height from its header, without decoding the pixels.

A folder of frames is exported at the size most of its frames have, so every size is needed
before the first frame is written; reading a few header bytes per file (PNG, JPEG, BMP, TIFF)
keeps that cheap for thousands of frames. Other formats are decoded.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _png(head: bytes) -> tuple[int, int] | None:
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    return None


def _bmp(head: bytes) -> tuple[int, int] | None:
    if head[:2] == b"BM" and len(head) >= 26:
        w, h = struct.unpack("<ii", head[18:26])
        return abs(w), abs(h)
    return None


def _jpeg(fh) -> tuple[int, int] | None:
    fh.seek(2)
    while True:
        marker = fh.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        while marker[1] == 0xFF:  # fill bytes
            marker = marker[1:] + fh.read(1)
        if marker[1] in (0xD8, 0x01) or 0xD0 <= marker[1] <= 0xD7:
            continue
        length = struct.unpack(">H", fh.read(2))[0]
        if marker[1] in _SOF:
            h, w = struct.unpack(">xHH", fh.read(5))
            return w, h
        fh.seek(length - 2, 1)


def _tiff(fh, head: bytes) -> tuple[int, int] | None:
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(head[:4])
    if order is None:
        return None
    fh.seek(struct.unpack(order + "I", head[4:8])[0])
    (count,) = struct.unpack(order + "H", fh.read(2))
    dims: dict[int, int] = {}
    for _ in range(count):
        tag, typ, _n, value = struct.unpack(order + "HHI4s", fh.read(12))
        if tag in (256, 257):
            dims[tag] = struct.unpack(
                order + ("H" if typ == 3 else "I"), value[: 2 if typ == 3 else 4]
            )[0]
    return (dims[256], dims[257]) if len(dims) == 2 else None


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image file, or None when it cannot be read at all."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(32)
            size = _png(head) or _bmp(head)
            if size is None and head[:2] == b"\xff\xd8":
                size = _jpeg(fh)
            if size is None:
                size = _tiff(fh, head)
    except (OSError, struct.error):
        size = None
    if size is not None and size[0] > 0 and size[1] > 0:
        return int(size[0]), int(size[1])
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # another format, or a header we misread
    return (img.shape[1], img.shape[0]) if img is not None else None
