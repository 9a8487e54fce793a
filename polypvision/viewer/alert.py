"""When to alert: a polyp that appears, not one that stays (pure logic, no Qt)."""

from __future__ import annotations

QUIET_S = 1.5  # a polyp must have been absent this long before it counts as new


class AppearanceAlert:
    """``update(present, now)`` is True exactly when a finding appears after a quiet spell.

    Commercial CADe systems alert on appearance; alerting on every frame with a polyp would
    be noise, and a detection that flickers off for a frame or two is the same polyp.
    """

    def __init__(self, quiet_s: float = QUIET_S) -> None:
        self.quiet_s = quiet_s
        self._last_seen = float("-inf")

    def update(self, present: bool, now: float) -> bool:
        if not present:
            return False
        new = now - self._last_seen > self.quiet_s
        self._last_seen = now
        return new

    def reset(self) -> None:
        self._last_seen = float("-inf")
