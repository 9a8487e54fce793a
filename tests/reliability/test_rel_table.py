"""The README's reliability table is current and names only tests that exist."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "reliability_table.py"


@pytest.mark.repo  # reads README.md and scripts/ of the checkout
def test_the_readme_reliability_table_is_current_and_its_tests_exist():
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
