"""Installed like any Python package: data found without the repository, nothing written into the
package, one version, and one line saying what to install when an extra is missing."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from toy_model import build_toy_model

import polypvision
from polypvision import paths
from polypvision.cli import main
from polypvision.errors import ContractError
from polypvision.model import registry, runtime


def _run(script: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def _block(*names: str) -> str:
    """A script prologue that makes importing ``names`` fail as if they were not installed."""
    return textwrap.dedent(f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in {names!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, Block())
    """)


def test_one_version_source():
    assert polypvision.__version__.count(".") >= 2
    try:
        assert importlib.metadata.version("polypvision") == polypvision.__version__
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("polypvision is not installed in this environment (PYTHONPATH only)")


@pytest.mark.repo
def test_pyproject_takes_the_version_from_the_package():
    tomllib = pytest.importorskip("tomllib")
    doc = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert "version" not in doc["project"] and "version" in doc["project"]["dynamic"]
    assert doc["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "polypvision.__version__"}
    extras = doc["project"]["optional-dependencies"]
    assert extras["cpu"] == ["onnxruntime>=1.20"] and extras["gpu"][0].startswith(
        "onnxruntime-gpu[cuda,cudnn]"
    )
    assert not any(
        "onnxruntime" in d or "pyside6" in d.lower() for d in doc["project"]["dependencies"]
    )


def test_models_env_overrides_the_shipped_folder(tmp_path, monkeypatch):
    build_toy_model(tmp_path / "toy.onnx", size=64)
    (tmp_path / "manifest.json").write_text(json.dumps({"cpu_default": "toy.onnx"}))
    monkeypatch.setenv(paths.MODELS_ENV, str(tmp_path))
    assert registry.models_dir() == tmp_path
    assert registry.default_model("cpu") == tmp_path / "toy.onnx"
    monkeypatch.setenv(paths.MODELS_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ContractError, match=paths.MODELS_ENV):
        registry.default_model("cpu")


def test_shipped_models_are_found_without_the_env(monkeypatch):
    monkeypatch.delenv(paths.MODELS_ENV, raising=False)
    folder = paths.models_dir()
    assert (folder / "manifest.json").is_file()
    assert folder == paths.PACKAGE_DIR / "models"  # package data, in a wheel as in a checkout
    assert (paths.shipped_splits_dir() / "two-centre.json").is_file()


def test_a_new_split_goes_to_the_user_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path))
    assert paths.new_splits_dir() == tmp_path / "splits"


def test_writes_through_the_package_are_refused_but_not_through_a_link_to_it(tmp_path):
    """The package's own folder is read-only; a checkout's top-level splits link (a developer's
    --split-file splits/NAME.json) is not the package."""
    shipped = paths.shipped_splits_dir()
    assert paths.inside_package(shipped / "new.json")
    assert paths.inside_package(paths.PACKAGE_DIR / "models" / ".." / "splits" / "x.json")
    assert not paths.inside_package(tmp_path / "new.json")
    link = tmp_path / "splits"
    link.symlink_to(shipped, target_is_directory=True)
    assert not paths.inside_package(link / "new.json")


def test_an_installed_copy_finds_its_data_and_writes_nothing_into_itself(tmp_path):
    """The package as a wheel lays it out (polypvision/{models,splits}), outside any checkout."""
    site = tmp_path / "site"
    shutil.copytree(
        paths.PACKAGE_DIR,
        site / "polypvision",
        ignore=shutil.ignore_patterns("models", "splits", "__pycache__", "*.npz", "gui"),
    )
    data = site / "polypvision"
    (data / "models").mkdir(parents=True)
    build_toy_model(data / "models" / "toy.onnx", size=64)
    (data / "models" / "manifest.json").write_text(json.dumps({"cpu_default": "toy.onnx"}))
    (data / "splits").mkdir()
    shipped = data / "splits" / "shipped.json"
    shipped.write_text("{}")
    before = sorted(p.relative_to(site) for p in site.rglob("*") if "__pycache__" not in p.parts)
    user = tmp_path / "user-data"
    script = f"""
        import json, sys
        sys.path.insert(0, {str(site)!r})
        import polypvision
        from polypvision import data as pdata, paths
        from polypvision.model.registry import default_model
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from tiny_datasets import make_dataset
        assert polypvision.__file__.startswith({str(site)!r}), polypvision.__file__
        ds = pdata.discover(make_dataset(paths.Path({str(tmp_path / "d")!r}), n_seq=6, per_seq=2))
        split = pdata.load_or_create_split(ds)  # first use: a new split file
        try:
            pdata.save_split(split, {str(shipped)!r})
            refused = False
        except pdata.SplitError as exc:
            refused = "read-only" in str(exc)
        print(json.dumps({{"model": str(default_model("cpu")), "split": str(split.path),
                          "splits_dir": str(pdata.SPLITS_DIR), "refused": refused}}))
    """
    env = {k: v for k, v in os.environ.items() if k not in (paths.MODELS_ENV, "PYTHONPATH")}
    env[paths.DATA_ENV] = str(user)
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["model"] == str(data / "models" / "toy.onnx")
    assert out["splits_dir"] == str(data / "splits")
    assert (
        out["split"] == str(user / "splits" / "d.json") and (user / "splits" / "d.json").is_file()
    )
    assert out["refused"] and shipped.read_text() == "{}"
    after = sorted(p.relative_to(site) for p in site.rglob("*") if "__pycache__" not in p.parts)
    assert after == before


def test_user_data_dir_follows_the_platform(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    monkeypatch.setattr(paths.sys, "platform", "linux")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert paths.user_data_dir() == tmp_path / "polypvision"
    monkeypatch.setattr(paths.sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert paths.user_data_dir() == tmp_path / "local" / "polypvision"
    monkeypatch.setattr(paths.sys, "platform", "darwin")
    assert paths.user_data_dir().parts[-3:] == ("Library", "Application Support", "polypvision")
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "mine"))
    assert paths.user_data_dir() == tmp_path / "mine"


def test_info_names_the_runtime_package_and_the_provider_that_runs(toy_model, capsys):
    import onnxruntime as ort

    assert main(["info", "--model", str(toy_model), "--provider", "cpu"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["polypvision"] == polypvision.__version__
    assert info["runtime"]["package"] in runtime.RUNTIME_DISTRIBUTIONS
    assert info["runtime"]["version"] == ort.__version__
    assert "CPUExecutionProvider" in info["runtime"]["providers_available"]
    assert info["provider"].startswith("CPU (") and info["contract"]["name"]


def test_without_a_runtime_loading_a_model_says_what_to_install(tmp_path, toy_model):
    script = _block("onnxruntime") + textwrap.dedent(f"""
        from polypvision.cli import main
        for cmd in (["info", "--model", {str(toy_model)!r}],
                    ["annotate", "synthetic", "-o", {str(tmp_path / "o.mp4")!r},
                     "--model", {str(toy_model)!r}]):
            assert main(cmd) == 2, cmd
        print("ok")
    """)
    r = _run(script, tmp_path)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and all("no ONNX runtime is installed" in ln for ln in lines), lines
    assert all("polypvision[cpu]" in ln and "polypvision[gpu]" in ln for ln in lines)
    assert not (tmp_path / "o.mp4").exists()


def test_without_the_app_extra_gui_says_what_to_install(tmp_path):
    r = _run(
        _block("PySide6", "shiboken6")
        + textwrap.dedent("""
        from polypvision.cli import main
        raise SystemExit(main(["gui"]))
    """),
        tmp_path,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "polypvision: error: the desktop app is not installed (no PySide6); pip install "
        "'polypvision[app]'"
    ]


def test_two_runtimes_in_one_environment_are_named(monkeypatch):
    monkeypatch.setattr(
        runtime, "installed_runtimes", lambda: [("onnxruntime", "1.0"), ("onnxruntime-gpu", "1.0")]
    )
    why = runtime.conflict()
    assert (
        "onnxruntime and onnxruntime-gpu" in why
        and "pip uninstall -y onnxruntime onnxruntime-gpu" in why
    )
    monkeypatch.setattr(runtime, "installed_runtimes", lambda: [("onnxruntime", "1.0")])
    assert runtime.conflict() is None


def test_cuda_libraries_from_nvidia_wheels_are_preloaded_once_and_quietly(monkeypatch, capsys):
    calls = []

    class FakeOrt:
        @staticmethod
        def preload_dlls():
            calls.append(1)
            print("Failed to load libcudnn.so.9")  # onnxruntime prints its complaints

    monkeypatch.setattr(runtime, "_preloaded", False)
    monkeypatch.setattr(runtime.importlib.util, "find_spec", lambda name: None)
    runtime.preload_cuda_libraries(FakeOrt)  # no nvidia/ wheels: nothing to load
    assert calls == []
    monkeypatch.setattr(runtime, "_preloaded", False)
    monkeypatch.setattr(runtime.importlib.util, "find_spec", lambda name: object())
    runtime.preload_cuda_libraries(FakeOrt)
    runtime.preload_cuda_libraries(FakeOrt)
    assert calls == [1] and capsys.readouterr().out == ""
