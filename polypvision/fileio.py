"""Files written whole or not at all: one helper for every small output the project replaces.

Every write goes to a hidden temporary name beside the target (a
:class:`~polypvision.partials.Partial`, ``.NAME.XXXXXXXX.partial[.EXT]``), is synced to the disk,
and is renamed over the target; on any failure the temporary file is removed and the target is
untouched. A reader, a re-run or a resumed run therefore sees the old file or the new one, never
half of one, and a run killed mid-write leaves only a hidden temporary file, which
:func:`polypvision.partials.sweep` recognises (its lock, when it holds one, is dropped by the kernel
with the process).

The multi-file outputs of an export (video, log, sidecar, masks) are published together by their
sinks (:mod:`polypvision.recording`), which use :class:`~polypvision.partials.Partial` directly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from polypvision.partials import Partial

__all__ = ["atomic_open", "atomic_path", "copy_file", "fsync_path", "write_bytes", "write_text"]


def fsync_path(path: Path) -> None:
    """Push a finished file to the disk: a full disk or a vanished share fails here, before the
    rename, while the earlier file is still in place."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (not possible on every platform; best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(
    target: str | os.PathLike[str], suffix: str = "", *, lock: bool = True, sync: bool = True
) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` to write to; on leaving the block normally it is
    synced and renamed over ``target``, on an exception it is removed (and the exception goes on).

    ``suffix`` ends the temporary name, for writers that choose a format by extension (Keras needs
    ``.weights.h5``). ``lock`` holds the advisory lock that tells a live write from a dead run's
    litter; pass False for writers that lock the file themselves (HDF5 does, and would fail).
    """
    target = Path(target)
    tmp = Partial(target, suffix)
    if not lock:
        tmp.release()
    try:
        yield tmp.path
        if sync:
            fsync_path(tmp.path)
        tmp.publish(target)
    except BaseException:
        tmp.discard()
        raise
    _fsync_dir(target.parent if str(target.parent) else Path("."))


@contextlib.contextmanager
def atomic_open(
    target: str | os.PathLike[str],
    mode: str = "w",
    *,
    encoding: str | None = None,
    newline: str | None = None,
    suffix: str = "",
    lock: bool = True,
) -> Iterator[IO[Any]]:
    """``open()`` for writing, through :func:`atomic_path`: the file replaces ``target`` only
    when the block ends without an exception. Text mode defaults to UTF-8."""
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    with (
        atomic_path(target, suffix, lock=lock) as tmp,
        open(tmp, mode, encoding=encoding, newline=newline) as fh,
    ):
        yield fh


def write_bytes(target: str | os.PathLike[str], data: bytes, *, lock: bool = True) -> Path:
    """Replace ``target`` with ``data`` (all or nothing). Returns the target's path."""
    with atomic_open(target, "wb", lock=lock) as fh:
        fh.write(data)
    return Path(target)


def write_text(
    target: str | os.PathLike[str], text: str, *, encoding: str = "utf-8", lock: bool = True
) -> Path:
    """Replace ``target`` with ``text`` (all or nothing; line ends are written as given)."""
    with atomic_open(target, "w", encoding=encoding, newline="", lock=lock) as fh:
        fh.write(text)
    return Path(target)


def copy_file(
    src: str | os.PathLike[str], target: str | os.PathLike[str], *, lock: bool = True
) -> Path:
    """Replace ``target`` with a copy of ``src`` (all or nothing)."""
    with atomic_path(target, lock=lock) as tmp:
        shutil.copyfile(src, tmp)
    return Path(target)
