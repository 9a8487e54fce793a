"""HTML of a procedure's report and of a run's index page (plain strings, every value escaped).

Event rows carry their figures as ``data-`` attributes as well as text, so a program (or a test)
can read the table back without parsing formatted numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from polypvision.events import EventSettings, PolypEvent
from polypvision.report.timeline import clock, timeline_svg

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;
max-width:1000px;color:#222;padding:0 12px}
h1{font-size:20px;margin:0 0 4px}
h2{font-size:16px;margin:26px 0 8px;border-bottom:1px solid #ddd;padding-bottom:3px}
.sub{color:#666;margin:0 0 14px;word-break:break-all}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eee;vertical-align:middle}
th{background:#f4f4f4;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.figs{display:flex;flex-wrap:wrap;gap:10px}
.fig{background:#f6f8f6;border:1px solid #e2e8e2;border-radius:6px;padding:6px 12px;min-width:110px}
.fig b{display:block;font-size:18px}.fig span{color:#666;font-size:12px}
.thumb img{display:block;border-radius:3px}.kv td:first-child{color:#555;width:220px}
.ok{color:#1b7f3b}.skipped{color:#555}.failed{color:#b00020}.warn{color:#9a6700}
.foot{color:#888;font-size:12px;margin-top:30px}code{font-size:12px}
"""


def _pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def _num(v: Any) -> str:
    return "" if v is None else escape(str(v))


def _fig(value: str, label: str) -> str:
    return f'<div class="fig"><b>{value}</b><span>{escape(label)}</span></div>'


def _figures_block(f: Mapping[str, Any]) -> str:
    return (
        '<div class="figs">'
        + "".join(
            [
                _fig(_num(f["frames_in"]) or "?", "frames in"),
                _fig(_num(f["frames_out"]), "frames out"),
                _fig(_num(f["unreadable_frames"]), "unreadable frames"),
                _fig(escape(clock(f["duration_s"])), "duration"),
                _fig(_num(f["frames_with_polyp"]), "frames with a polyp"),
                _fig(_num(f["polyp_events"]), "polyp events"),
            ]
        )
        + "</div>"
    )


def _event_rows(events: Sequence[PolypEvent], thumbs: Mapping[int, str]) -> str:
    if not events:
        return "<p>No polyp event: no detection lasted long enough (definition below).</p>"
    rows = []
    for e in events:
        uri = thumbs.get(e.largest_frame)
        img = (
            f'<img src="{uri}" alt="frame {e.largest_frame}" width="240">' if uri else "no picture"
        )
        rows.append(
            f'<tr class="event" data-number="{e.number}" data-start-frame="{e.start_frame}" '
            f'data-end-frame="{e.end_frame}" data-start-s="{e.start_s:.4f}" '
            f'data-end-s="{e.end_s:.4f}" data-peak="{e.peak:.4f}" data-score="{e.score:.4f}" '
            f'data-largest-area="{e.largest_area:.5f}" '
            f'data-largest-frame="{e.largest_frame}"><td class="n">{e.number}</td><td '
            f'class="n">{clock(e.start_s)}</td><td class="n">{clock(e.end_s)}</td><td '
            f'class="n">{e.duration_s:.1f} s</td><td class="n">{e.score:.2f}</td><td '
            f'class="n">{_pct(e.largest_area)}</td><td class="n">{e.largest_frame}</td><td '
            f'class="thumb">{img}</td></tr>'
        )
    head = (
        '<tr><th class="n">#</th><th class="n">start</th><th class="n">end</th><th '
        'class="n">duration</th>'
        '<th class="n">highest score</th><th class="n">largest area</th><th class="n">at '
        "frame</th>"
        "<th>largest outline</th></tr>"
    )
    return f'<table class="events">{head}{"".join(rows)}</table>'


def _plain(v: Any) -> str:
    """A setting as a reader reads it: 'alpha 0.8, on the model's own', not JSON."""
    if v is None:
        return "the model's own"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, dict):
        return ", ".join(f"{str(k).replace('_', ' ')} {_plain(x)}" for k, x in v.items()) or "none"
    if isinstance(v, (list, tuple)):
        return ", ".join(_plain(x) for x in v) or "none"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _kv(rows: Sequence[tuple[str, Any]]) -> str:
    def text(v: Any) -> str:
        return escape(_plain(v))

    cells = "".join(f"<tr><td>{escape(k)}</td><td>{text(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{cells}</table>'


def _model_rows(sidecar: Mapping[str, Any], settings: EventSettings) -> list[tuple[str, Any]]:
    model = sidecar.get("model") or {}
    contract = model.get("contract") or {}
    s = dict(sidecar.get("settings") or {})
    s.pop("events", None)
    batch = sidecar.get("batch") or {}
    source = sidecar.get("source") or {}
    rows: list[tuple[str, Any]] = [
        ("model", f"{contract.get('name', '?')} ({contract.get('architecture', '?')})"),
        ("model file", str(model.get("path", "?")).replace("\\", "/").rsplit("/", 1)[-1]),
    ]
    if batch.get("model_sha256"):
        rows.append(("model sha256", batch["model_sha256"]))
    decision = (contract.get("output") or {}).get("decision")
    if isinstance(decision, dict):
        from polypvision.decision import DecisionSpec

        spec = DecisionSpec.from_dict(decision)
        rows.append(
            (
                "a polyp is reported when",
                spec.describe() if spec.threshold > 0 else "anything is outlined",
            )
        )
    rows += [
        ("ran on", str(sidecar.get("provider", "?"))),
        (
            "input",
            f"{source.get('width', '?')}x{source.get('height', '?')} at {source.get('fps', '?')} "
            "fps",
        ),
    ]
    rows += [(f"setting: {k}", v) for k, v in s.items()]
    rows += [
        ("event: minimum duration", f"{settings.min_duration_s:g} s"),
        ("event: gaps bridged up to", f"{settings.max_gap_s:g} s"),
        ("software", f"polypvision {(sidecar.get('software') or {}).get('polypvision', '?')}"),
        ("annotated", str(sidecar.get("created", "?"))),
    ]
    return rows


def render_report(
    *,
    title: str,
    sidecar: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    events: Sequence[PolypEvent],
    settings: EventSettings,
    figures: Mapping[str, Any],
    thumbs: Mapping[int, str],
    key: str,
    video_name: str,
) -> str:
    fps = (sidecar.get("source") or {}).get("fps")
    warnings = (sidecar.get("summary") or {}).get("warnings") or []
    warn = "".join(f'<p class="warn">warning: {escape(w)}</p>' for w in warnings)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="polypvision-report" content="{escape(key)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} - PolypVision report</title><style>{CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<p class="sub">annotated video: <a href="{escape(video_name)}">{escape(video_name)}</a></p>
{_figures_block(figures)}
{warn}
<h2>Detection timeline</h2>
{timeline_svg(records, events, fps)}
<h2>Polyp events</h2>
{_event_rows(events, thumbs)}
<p class="sub">An event is a stretch with a polyp outlined that lasts at least
{settings.min_duration_s:g} s, gaps of up to {settings.max_gap_s:g} s bridged. Highest score: the
highest score the alarm rests on over the event's frames (the score named in "a polyp is reported
when" below; a model output between 0 and 1, not a calibrated confidence); largest area: the
outline's largest share of the frame, shown at that frame.</p>
<h2>Model and settings</h2>
{_kv(_model_rows(sidecar, settings))}
<p class="foot">PolypVision decision support, not a diagnosis. Generated from
{escape(video_name)} and its detection log.</p>
</body></html>
"""


def _index_row(r: Mapping[str, Any]) -> str:
    name = escape(str(r["path"]))
    link = f'<a href="{escape(str(r["report"]))}">{name}</a>' if r.get("report") else name
    status = escape(str(r["status"]))
    dur = clock(float(r["duration_s"])) if r.get("frames_out") else ""
    cells = [
        f"<td>{link}</td>",
        f'<td class="{status}">{status}</td>',
        f'<td class="n">{_num(r.get("frames_out"))}</td>',
        f'<td class="n">{escape(dur)}</td>',
        f'<td class="n">{_num(r.get("frames_with_polyp"))}</td>',
        f'<td class="n">{_num(r.get("polyp_events"))}</td>',
        f"<td>{escape(str(r.get('error', '')))}</td>",
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def render_index(rows: Sequence[Mapping[str, Any]], *, title: str, note: str = "") -> str:
    """The run's index: every procedure, linked to its report, failures with their error."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r["status"])] = counts.get(str(r["status"]), 0) + 1
    tally = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    events = sum(int(r.get("polyp_events") or 0) for r in rows)
    head = (
        '<tr><th>procedure</th><th>status</th><th class="n">frames</th><th class="n">duration</th>'
        '<th class="n">frames with a polyp</th><th class="n">polyp events</th><th>error</th></tr>'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{CSS}</style></head>
<body><h1>{escape(title)}</h1>
<p class="sub">{len(rows)} procedures: {escape(tally)}; {events} polyp events in all. {escape(note)}
Figures per procedure are in <a href="summary.csv">summary.csv</a>.</p>
<table class="index">{head}{"".join(_index_row(r) for r in rows)}</table>
</body></html>
"""
