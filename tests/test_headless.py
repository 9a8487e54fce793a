"""The core (everything but polypvision.gui) imports and runs with PySide6 unavailable."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import polypvision

CORE_MODULES = [
    "polypvision",
    "polypvision.cli",
    "polypvision.sources",
    "polypvision.model.session",
    "polypvision.pipeline.annotate",
    "polypvision.pipeline.live",
    "polypvision.pipeline.recorder",
    "polypvision.overlay",
    "polypvision.smoothing",
    "polypvision.recording",
    "polypvision.fov",
    "polypvision.demo",
    "polypvision.viewer.controller",
    "polypvision.viewer.export",
    "polypvision.viewer.source_choices",
    "polypvision.viewer.labels",
]


def test_core_runs_without_qt(tmp_path, toy_model, clip_small):
    script = textwrap.dedent(f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('PySide6', 'shiboken6', 'tensorflow', 'tf2onnx', 'keras'):
                    raise ImportError('blocked: ' + name)
        sys.meta_path.insert(0, Block())
        for m in {CORE_MODULES!r}:
            __import__(m)
        from polypvision.cli import main
        rc = main(['annotate', {str(clip_small)!r}, '-o', {str(tmp_path / "o.mp4")!r},
                   '--model', {str(toy_model)!r}, '--quiet'])
        assert rc == 0, rc
        bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'tensorflow')
               or m.startswith('polypvision.gui') or m.startswith('polypvision.training')]
        assert not bad, bad
        print('ok')
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr
    assert (tmp_path / "o.mp4").stat().st_size > 0


def test_only_gui_imports_pyside6():
    root = (
        Path(polypvision.__file__).resolve().parent
    )  # the package under test (checkout or installed)
    offenders = []
    for p in root.rglob("*.py"):
        if "gui" in p.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n.split(".")[0] in ("PySide6", "shiboken6") for n in names):
                offenders.append(str(p.relative_to(root)))
    assert offenders == []
