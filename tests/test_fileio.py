"""The one atomic-write helper: the target is replaced whole or not at all,
nothing is left behind."""

from __future__ import annotations

import os
import stat

import pytest

from polypvision import fileio, partials


def _hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_write_text_and_bytes_replace_the_target(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old")
    assert fileio.write_text(target, "new\nline\n") == target
    assert target.read_bytes() == b"new\nline\n"  # line ends as given, on every platform
    fileio.write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01" and _hidden(tmp_path) == []
    mask = os.umask(0)
    os.umask(mask)
    assert (
        stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    )  # like any file the user makes, not 0600


def test_a_failure_keeps_the_old_file_and_removes_the_temporary_one(tmp_path):
    target = tmp_path / "history.csv"
    target.write_text("epoch\n1\n")
    with pytest.raises(RuntimeError), fileio.atomic_open(target, "w") as fh:
        fh.write("epoch\n")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "epoch\n1\n" and _hidden(tmp_path) == []
    with pytest.raises(KeyboardInterrupt), fileio.atomic_path(target, ".csv") as tmp:
        tmp.write_text("x")
        raise KeyboardInterrupt
    assert target.read_text() == "epoch\n1\n" and _hidden(tmp_path) == []


def test_the_temporary_name_is_a_partial_beside_the_target(tmp_path):
    """Hidden, in the target's folder (the rename is atomic), ending in the writer's suffix, locked
    while written unless the writer locks it itself; a killed writer's file is swept as litter."""
    target = tmp_path / "e001.weights.h5"
    with fileio.atomic_path(target, ".weights.h5") as tmp:
        assert (
            tmp.parent == tmp_path
            and tmp.name.endswith(".weights.h5")
            and tmp.name.startswith(".e001")
        )
        assert not partials._unlocked(tmp)
    with fileio.atomic_path(target, ".weights.h5", lock=False) as tmp:
        assert partials._unlocked(tmp)
        tmp.write_bytes(b"w")
    assert target.read_bytes() == b"w"
    with fileio.atomic_path(tmp_path / "state.json", lock=False) as tmp:
        tmp.write_text("{}")
        assert partials.PARTIAL_NAME.match(tmp.name)
        assert (
            partials.sweep(tmp_path, min_age_s=0) != [] and not tmp.exists()
        )  # what a dead run leaves
        tmp.write_text("{}")  # (the writer itself is alive here; put it back to finish)


def test_copy_file(tmp_path):
    src = tmp_path / "e003.weights.h5"
    src.write_bytes(b"weights")
    (tmp_path / "best.weights.h5").write_bytes(b"older")
    fileio.copy_file(src, tmp_path / "best.weights.h5")
    assert (tmp_path / "best.weights.h5").read_bytes() == b"weights" and _hidden(tmp_path) == []


def test_a_missing_folder_is_an_error_and_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        fileio.write_text(tmp_path / "no" / "such" / "x.txt", "x")
    assert list(tmp_path.iterdir()) == []
