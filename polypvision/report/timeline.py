"""The detection timeline of one procedure as an inline SVG (no script, no external file).

Outlined area over media time, with each polyp event shaded and numbered and a strip of the
frames with a detection underneath. Long procedures are binned (each bin keeps its largest
area), so the drawing's size does not grow with the recording's length.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from polypvision.events import PolypEvent, duration_s

WIDTH, HEIGHT = 960, 190
LEFT, RIGHT, TOP, BOTTOM = 52, 14, 22, 44
STRIP_H = 8
MAX_BINS = 600
_TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def clock(seconds: float) -> str:
    """m:ss.s (h:mm:ss beyond an hour)."""
    seconds = max(0.0, seconds)
    if seconds >= 3600:
        h, rem = divmod(int(round(seconds)), 3600)
        return f"{h}:{rem // 60:02d}:{rem % 60:02d}"
    m, s = divmod(seconds, 60)
    return f"{int(m)}:{s:04.1f}"


def _bins(records: Sequence[Mapping[str, Any]], n: int) -> list[tuple[float, bool]]:
    out: list[tuple[float, bool]] = []
    size = len(records) / n
    for b in range(n):
        chunk = records[int(b * size) : max(int((b + 1) * size), int(b * size) + 1)]
        hits = [r for r in chunk if r.get("polyp")]
        out.append((max((float(r.get("area", 0.0)) for r in hits), default=0.0), bool(hits)))
    return out


def _hit_runs(hits: Sequence[bool]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for i, hit in enumerate(hits):
        if hit and runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        elif hit:
            runs.append((i, i))
    return runs


def _tick_step(total_s: float) -> float:
    for step in _TICK_STEPS_S:
        if total_s / step <= 10:
            return step
    return _TICK_STEPS_S[-1]


def timeline_svg(
    records: Sequence[Mapping[str, Any]], events: Sequence[PolypEvent], fps: float | None = None
) -> str:
    total = duration_s(records, fps) or 1.0
    t0 = float(records[0]["t"]) if records else 0.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM - STRIP_H - 6
    strip_y = TOP + plot_h + 6

    def x(t: float) -> float:
        return LEFT + plot_w * min(max((t - t0) / total, 0.0), 1.0)

    n = max(1, min(len(records), MAX_BINS))
    bins = _bins(records, n) if records else []
    top_area = max((a for a, _ in bins), default=0.0)
    y_max = max(0.01, math.ceil(top_area * 1.1 * 100) / 100)

    def y(area: float) -> float:
        return TOP + plot_h * (1 - min(area / y_max, 1.0))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'role="img" aria-label="detection timeline" class="timeline">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#ccc"/>',
    ]
    for ev in events:
        x0, x1 = x(ev.start_s), x(ev.end_s)
        parts.append(
            f'<rect class="event-band" x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 1.5):.1f}" '
            f'height="{plot_h}" fill="#ffb347" fill-opacity="0.35"><title>event {ev.number}: '
            f"{clock(ev.start_s)} to {clock(ev.end_s)}</title></rect>"
        )
        parts.append(
            f'<text x="{(x0 + x1) / 2:.1f}" y="{TOP - 6}" font-size="11" text-anchor="middle" '
            f'fill="#b35c00">{ev.number}</text>'
        )
    if bins:
        step = plot_w / n
        pts = [f"{LEFT:.1f},{TOP + plot_h:.1f}"]
        for i, (area, _) in enumerate(bins):
            pts.append(
                f"{LEFT + i * step:.1f},{y(area):.1f} {LEFT + (i + 1) * step:.1f},{y(area):.1f}"
            )
        pts.append(f"{LEFT + plot_w:.1f},{TOP + plot_h:.1f}")
        parts.append(
            f'<polygon points="{" ".join(pts)}" fill="#2e8b57" fill-opacity="0.75" stroke="none"/>'
        )
        for first, last in _hit_runs([hit for _, hit in bins]):
            parts.append(
                f'<rect x="{LEFT + first * step:.1f}" y="{strip_y}" '
                f'width="{max((last - first + 1) * step, 0.8):.1f}" height="{STRIP_H}" '
                'fill="#2e8b57"/>'
            )
    parts.append(
        f'<rect x="{LEFT}" y="{strip_y}" width="{plot_w}" height="{STRIP_H}" fill="none" '
        'stroke="#ccc"/>'
    )
    tick = _tick_step(total)
    k = 0
    while k * tick <= total + 1e-9:
        tx = x(t0 + k * tick)
        parts.append(
            f'<line x1="{tx:.1f}" y1="{strip_y + STRIP_H}" x2="{tx:.1f}" '
            f'y2="{strip_y + STRIP_H + 4}" stroke="#555"/>'
        )
        anchor = "end" if tx > LEFT + plot_w - 20 else "middle"
        parts.append(
            f'<text x="{tx:.1f}" y="{strip_y + STRIP_H + 16}" font-size="11" '
            f'text-anchor="{anchor}" fill="#333">{escape(clock(k * tick))}</text>'
        )
        k += 1
    for frac in (0.0, 0.5, 1.0):
        ty = y(y_max * frac)
        parts.append(
            f'<text x="{LEFT - 6}" y="{ty + 4:.1f}" font-size="11" text-anchor="end" fill="#333">'
            f"{y_max * frac * 100:.1f}%</text>"
        )
    parts.append(
        f'<text x="{LEFT}" y="{HEIGHT - 4}" font-size="11" fill="#555">outlined area (share of '
        "the frame) "
        "over time; shaded: polyp events; strip: frames with a detection</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)
