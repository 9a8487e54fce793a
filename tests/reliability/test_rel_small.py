"""The small ones (issue 16, item 10): a cause kept in the error line, bad numbers and names for
options refused in one line, Ctrl-C at start-up, and the batch size bounded. (The GUI export that
asks before replacing is in ``tests/gui/test_gui_reliability.py``.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from relhelpers import assert_one_error_line, partials, run_cli

from polypvision.cli import main


def test_a_model_error_keeps_its_cause(tmp_path, toy_model):
    """onnxruntime puts the reason last, after the path and a C++ signature: a long path pushed
    "Unsupported model IR version" out of a 160-character cut."""
    import onnx

    from polypvision.errors import ContractError
    from polypvision.model.session import Segmenter

    model = onnx.load(str(toy_model))
    model.ir_version = 99
    deep = tmp_path / ("a-rather-long-folder-name-as-clinical-shares-have-" * 2) / "study-2026"
    deep.mkdir(parents=True)
    path = deep / "model-from-a-newer-exporter.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ContractError) as err:
        Segmenter(path, "cpu")
    msg = str(err.value)
    assert "Unsupported model IR version: 99" in msg and str(path) in msg and "\n" not in msg


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_fps_that_is_not_a_finite_positive_number(tmp_path, toy_model, value):
    r = run_cli(
        "annotate",
        tmp_path,
        "-o",
        tmp_path / "o.mp4",
        "--fps",
        value,
        "--model",
        toy_model,
        "--quiet",
    )
    assert_one_error_line(r, "--fps")
    assert not (tmp_path / "o.mp4").exists()


def test_batch_size_is_bounded(tmp_path, toy_model, clip_small):
    r = run_cli(
        "annotate",
        clip_small,
        "-o",
        tmp_path / "o.mp4",
        "--batch",
        "100000",
        "--model",
        toy_model,
        "--quiet",
    )
    assert_one_error_line(r, "between 1 and 64")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, needle",
    [
        (["-o", "{tmp}/o.avi"], "must end in .mp4"),
        (["-o", "{tmp}/o"], "must end in .mp4"),
        (["-o", "{tmp}/o.mp4", "--style", ","], "names no overlay"),
        (["-o", "{tmp}/o.mp4", "--style", " , ,"], "names no overlay"),
    ],
)
def test_outputs_and_styles_that_would_do_something_else(
    tmp_path, toy_model, clip_small, capsys, args, needle
):
    """-o x.avi silently wrote MP4 under the .avi name; --style , drew nothing without a word."""
    rc = main(
        [
            "annotate",
            str(clip_small),
            *[a.format(tmp=tmp_path) for a in args],
            "--model",
            str(toy_model),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    assert list(tmp_path.iterdir()) == []


def test_style_none_draws_nothing_on_purpose(tmp_path, toy_model, clip_small):
    assert (
        main(
            [
                "annotate",
                str(clip_small),
                "-o",
                str(tmp_path / "o.mp4"),
                "--style",
                "none",
                "--model",
                str(toy_model),
                "--quiet",
            ]
        )
        == 0
    )


_INTERRUPT_DURING_IMPORT = """
import os, signal, sys

TARGET = sys.argv[1]


class InterruptOnImport:
    # Sends Ctrl-C to this process at the moment the named module starts importing.
    def find_spec(self, name, path=None, target=None):
        if name == TARGET:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None


sys.meta_path.insert(0, InterruptOnImport())
sys.argv = ["polypvision", *sys.argv[2:]]
from polypvision.__main__ import run

run()
"""


@pytest.mark.parametrize("module", ["numpy", "cv2", "onnxruntime", "av"])
def test_ctrl_c_at_start_up_is_one_line_and_status_130(tmp_path, toy_model, clip_small, module):
    """Ctrl-C while the command is still importing a library (numpy turned the interrupt into
    an ImportError traceback, exit 1): exit 130, one line, no traceback, no file. The interrupt
    is sent from inside the import itself, so the test does not depend on timing."""
    env = dict(os.environ)
    root = Path(__file__).resolve().parents[2]
    if (root / "polypvision").is_dir():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    args = ["annotate", str(clip_small), "-o", str(tmp_path / "o.mp4")]
    args += ["--model", str(toy_model), "--quiet"]
    p = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_DURING_IMPORT, module, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert "Traceback" not in p.stderr, p.stderr
    assert p.returncode == 130, (p.returncode, p.stderr)
    assert p.stderr.strip().splitlines() == ["polypvision: interrupted; no output was written"]
    assert not (tmp_path / "o.mp4").exists() and partials(tmp_path) == []
