"""Shared fixtures: a toy ONNX model and small real video clips, made per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from toy_model import build_toy_model  # noqa: E402

SHARED_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHARED_DATA = SHARED_ROOT / "CVC-ClinicDB"


def pytest_report_header(config):
    import polypvision

    return f"polypvision {polypvision.__version__} from {Path(polypvision.__file__).parent}"


def pytest_collection_modifyitems(config, items):
    """Tests marked slow (long fault runs: real processes killed, real apps signalled) run only when
    asked for (``-m slow``, as CI does after the default run), so the default run stays short."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config):
    """POLYPVISION_EXPECT_INSTALLED=1 (CI's installed-wheel run):
    refuse to test a source checkout."""
    if os.environ.get("POLYPVISION_EXPECT_INSTALLED") == "1":
        from polypvision import paths

        if "site-packages" not in paths.PACKAGE_DIR.parts:
            raise pytest.UsageError(
                f"polypvision was imported from the checkout {paths.PACKAGE_DIR}, "
                "not from the installed wheel"
            )


@pytest.fixture(scope="session")
def toy_model(tmp_path_factory) -> Path:
    return build_toy_model(tmp_path_factory.mktemp("models") / "toy.onnx", size=64)


@pytest.fixture(scope="session")
def clip_640(tmp_path_factory) -> Path:
    """A real H.264 MP4, 640x480 at 25 fps, 30 frames, each stamped with its index."""
    from polypvision.demo import write_synthetic_clip

    return write_synthetic_clip(
        tmp_path_factory.mktemp("clips") / "clip640.mp4", 30, 640, 480, 25.0, stamp=True
    )


@pytest.fixture(scope="session")
def clip_small(tmp_path_factory) -> Path:
    from polypvision.demo import write_synthetic_clip

    return write_synthetic_clip(
        tmp_path_factory.mktemp("clips") / "small.mp4", 12, 160, 120, 10.0, stamp=True
    )


@pytest.fixture(scope="session")
def clinicdb() -> Path:
    if not (SHARED_DATA / "images").is_dir():
        pytest.skip("CVC-ClinicDB not present at ../shared/data")
    return SHARED_DATA


def _shared(name: str, marker: str = "images") -> Path:
    if not (SHARED_ROOT / name / marker).is_dir():
        pytest.skip(f"{name} not present at ../shared/data")
    return SHARED_ROOT / name


@pytest.fixture(scope="session")
def kvasir() -> Path:
    return _shared("Kvasir-SEG")


@pytest.fixture(scope="session")
def negatives() -> Path:
    return _shared("PolypGen-negatives")


@pytest.fixture(scope="session")
def cp_child() -> Path:
    return _shared("CP-CHILD-nonpolyp")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep the demo clip cache out of the user's home during tests (shared per session)."""
    cache = tmp_path_factory.getbasetemp() / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
