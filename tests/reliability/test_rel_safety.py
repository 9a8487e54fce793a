"""Safety of what PolypVision loads and writes: ONNX models only (nothing is ever unpickled),
exports never overwrite or delete an input, and ``--blackout`` removes the tower's on-screen
text (patient details) from exported clips, proved by decoding the export.

"Output is the input" is also in
``tests/test_annotate.py::test_bad_input_one_line_exit_2_no_output``.
"""

from __future__ import annotations

import ast
import hashlib
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from relhelpers import assert_one_error_line, decode_all, partials, run_cli, write_video

import polypvision
from polypvision.errors import ContractError
from polypvision.model.session import Segmenter
from polypvision.sources.synthetic import SyntheticClip

ROOT = Path(polypvision.__file__).resolve().parent  # the package under test (checkout or installed)
# Loaders that can run code from a file (pickle and everything built on it) or Keras models.
UNSAFE_MODULES = {
    "pickle",
    "_pickle",
    "cPickle",
    "dill",
    "cloudpickle",
    "joblib",
    "shelve",
    "marshal",
    "keras",
    "tensorflow",
    "tf_keras",
    "torch",
    "h5py",
}
# Not the runtime: training (Keras by design), and the bench's opt-in --keras comparison rows.
NOT_RUNTIME = {"training", "cli_train.py", "data.py", "evaluate.py", "bench.py"}


class _Evil:
    """Unpickling this touches a marker file: proof that the pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize(
    "name", ["model.onnx", "model.pkl", "model.h5", "model.keras", "model.joblib"]
)
def test_a_pickle_posing_as_a_model_is_refused_and_never_executed(tmp_path, name):
    marker = tmp_path / "pwned"
    evil = tmp_path / name
    evil.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(ContractError, match="not a loadable ONNX model"):
        Segmenter(evil, "cpu")
    assert not marker.exists()


def test_a_pickle_posing_as_a_model_via_the_cli(tmp_path, clip_small):
    marker = tmp_path / "pwned"
    evil = tmp_path / "model.onnx"
    evil.write_bytes(pickle.dumps(_Evil(marker)))
    r = run_cli("annotate", clip_small, "-o", tmp_path / "o.mp4", "--model", evil, "--quiet")
    assert_one_error_line(r, "not a loadable ONNX model")
    assert not marker.exists() and not (tmp_path / "o.mp4").exists()


def _runtime_files() -> list[Path]:
    return [p for p in ROOT.rglob("*.py") if not (set(p.relative_to(ROOT).parts) & NOT_RUNTIME)]


def test_runtime_code_has_no_pickle_or_keras_loaders():
    offenders = []
    for p in _runtime_files():
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{p.relative_to(ROOT)} imports {n}"
                for n in names
                if n.split(".")[0] in UNSAFE_MODULES
            ]
            if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                offenders.append(f"{p.relative_to(ROOT)} passes allow_pickle")
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("load", "loads")
                and isinstance(node.value, ast.Name)
                and node.value.id in ("np", "numpy", "pickle", "torch")
            ):
                offenders.append(f"{p.relative_to(ROOT)} calls {node.value.id}.{node.attr}")
    assert len(_runtime_files()) > 10 and offenders == []


def test_annotate_runs_with_every_unsafe_loader_blocked(tmp_path, toy_model, clip_small):
    """At runtime: Keras/TF/torch/joblib cannot even be imported, and any call that would
    unpickle (pickle.load(s), Unpickler, numpy.load) fails loudly; annotate must not notice."""
    script = textwrap.dedent(f"""
        import importlib.abc, sys
        BLOCK = {sorted(UNSAFE_MODULES - {"pickle", "_pickle", "marshal"})!r}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in BLOCK:
                    raise ImportError('blocked: ' + name)
        sys.meta_path.insert(0, Block())
        import pickle, numpy
        def refuse(*a, **k):
            raise AssertionError('something tried to unpickle')
        pickle.load = pickle.loads = refuse
        class NoUnpickler:
            def __init__(self, *a, **k):
                refuse()
        pickle.Unpickler = NoUnpickler
        numpy.load = refuse
        from polypvision.cli import main
        rc = main(['annotate', {str(clip_small)!r}, '-o', {str(tmp_path / "o.mp4")!r},
                   '--model', {str(toy_model)!r}, '--log', {str(tmp_path / "l.jsonl")!r},
                   '--quiet'])
        loaded = sorted(m for m in sys.modules if m.split('.')[0] in BLOCK)
        print('rc', rc, 'loaded', loaded)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "rc 0 loaded []" in r.stdout, r.stdout + r.stderr


def _digest(path: Path) -> str:
    if path.is_dir():
        return "|".join(f"{p.name}:{_digest(p)}" for p in sorted(path.iterdir()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _frames_folder(folder: Path) -> Path:
    folder.mkdir()
    clip = SyntheticClip(96, 72, stamp=False)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), clip.frame(i))
    return folder


@pytest.mark.parametrize(
    "case",
    [
        "output via symlink",
        "output via ..",
        "log is the input",
        "log is the output",
        "masks is the input folder",
        "masks holds the input video",
        "masks holds the output",
        "masks holds other files",
    ],
)
def test_exports_never_overwrite_or_delete_an_input(tmp_path, toy_model, case):
    vids = tmp_path / "vids"
    vids.mkdir()
    clip = write_video(vids / "clip.mp4", [SyntheticClip(96, 72).frame(i) for i in range(4)])
    frames = _frames_folder(tmp_path / "frames")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "report.docx").write_bytes(b"someone's work")
    (tmp_path / "link.mp4").symlink_to(clip)
    out = tmp_path / "o.mp4"
    inp, args, needle = {
        "output via symlink": (clip, ["-o", tmp_path / "link.mp4"], "input itself"),
        "output via ..": (clip, ["-o", vids / ".." / "vids" / "clip.mp4"], "input itself"),
        "log is the input": (clip, ["-o", out, "--log", clip], "input itself"),
        "log is the output": (clip, ["-o", out, "--log", out], "input itself"),
        "masks is the input folder": (frames, ["-o", out, "--masks", frames], "would replace"),
        "masks holds the input video": (clip, ["-o", out, "--masks", vids], "would replace"),
        "masks holds the output": (clip, ["-o", docs / "o.mp4", "--masks", docs], "would replace"),
        "masks holds other files": (clip, ["-o", out, "--masks", docs], "not masks"),
    }[case]
    before = {p: _digest(p) for p in (vids, frames, docs)}
    r = run_cli("annotate", inp, *args, "--model", toy_model, "--quiet")
    assert_one_error_line(r, needle)
    assert {p: _digest(p) for p in (vids, frames, docs)} == before
    assert not out.exists() and not partials(tmp_path) and not partials(vids) and not partials(docs)


def test_masks_replace_an_earlier_masks_folder(tmp_path, toy_model, clip_small):
    """The one folder --masks may replace: an earlier export's masks (PNG files only)."""
    masks = tmp_path / "m"
    masks.mkdir()
    (masks / "000099.png").write_bytes(b"stale mask")
    assert (
        run_cli(
            "annotate",
            clip_small,
            "-o",
            tmp_path / "o.mp4",
            "--model",
            toy_model,
            "--masks",
            masks,
            "--quiet",
        ).returncode
        == 0
    )
    assert sorted(p.name for p in masks.iterdir()) == [f"{i:06d}.png" for i in range(12)]
    assert os.stat(masks).st_mode & 0o777 == 0o777 & ~_umask()


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


TOWER_TEXT = [
    ("PATIENT: DOE, JANE", "tl"),
    ("DOB 1961-04-02", "tl2"),
    ("ID 0048213377", "tr"),
    ("2024-03-12 14:22:07", "bl"),
    ("ST. ELSEWHERE GI-3", "br"),
]


def _tower_clip(
    path: Path, n: int, w: int = 320, h: int = 240, dark_start: int = 0
) -> tuple[Path, np.ndarray, np.ndarray]:
    """A clip with bright patient text burned into the dark border, as endoscopy towers do.
    Returns the clip, the true field of view and where the text is."""
    clip = SyntheticClip(w, h, stamp=False)
    fov = clip._fov.astype(np.uint8)
    layer = np.zeros((h, w), np.uint8)
    pos = {
        "tl": (2, 10),
        "tl2": (2, 22),
        "tr": (w - 78, 10),
        "bl": (2, h - 6),
        "br": (w - 96, h - 6),
    }
    for text, where in TOWER_TEXT:
        cv2.putText(layer, text, pos[where], cv2.FONT_HERSHEY_PLAIN, 0.7, 255, 1, cv2.LINE_8)
    border = cv2.erode(1 - fov, np.ones((7, 7), np.uint8))  # text only where the border is
    layer[border == 0] = 0
    assert (layer > 0).sum() > 300, "the text must really be there"
    frames = []
    for i in range(n):
        f = np.zeros((h, w, 3), np.uint8) if i < dark_start else clip.frame(i)
        f[layer > 0] = 255
        frames.append(f)
    return write_video(path, frames), fov, layer > 0


@pytest.mark.parametrize("dark_start", [0, 2], ids=["from-first-frame", "recording-starts-black"])
def test_blackout_removes_every_pixel_outside_the_field_of_view(tmp_path, toy_model, dark_start):
    clip, fov, text = _tower_clip(tmp_path / "tower.mp4", 12, dark_start=dark_start)
    plain, black = tmp_path / "plain.mp4", tmp_path / "black.mp4"
    if not dark_start:  # the control: without --blackout the text is in the export
        assert (
            run_cli("annotate", clip, "-o", plain, "--model", toy_model, "--quiet").returncode == 0
        )
        assert min(f[text].mean() for f in decode_all(plain)) > 150
    r = run_cli("annotate", clip, "-o", black, "--model", toy_model, "--blackout", "--quiet")
    assert r.returncode == 0, r.stderr
    out = decode_all(black)
    assert len(out) == 12
    outside = (
        cv2.dilate(fov, np.ones((9, 9), np.uint8)) == 0
    )  # 4 px allowance for codec ringing at the edge
    for i, f in enumerate(out):
        assert f[text].max() < 40, f"frame {i}: text survives ({f[text].max()})"
        assert f[outside].max() < 40, f"frame {i}: a pixel outside the field of view survives"
    inside = cv2.erode(fov, np.ones((15, 15), np.uint8)) > 0
    assert np.mean([f[inside].mean() for f in out[dark_start:]]) > 40  # the picture itself is kept
