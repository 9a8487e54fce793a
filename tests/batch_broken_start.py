"""A job whose module cannot be imported in a worker (as when a script lacks its __main__ guard)."""

from __future__ import annotations

import os

if os.environ.get("PV_TEST_BREAK_START") == "1":
    raise RuntimeError("this worker cannot start")


def job(proc, ctx, progress=None):  # pragma: no cover - never reached in a worker
    raise AssertionError("unreachable")
