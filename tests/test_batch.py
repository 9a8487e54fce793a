"""`polypvision batch` with the local engine: outputs, summary, re-runs, failures, dead workers."""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

import pytest
from batch_helpers import (
    KILL_DIR_ENV,
    decode_frames,
    killed_always_job,
    killed_once_job,
    log_lines_without_timing,
    make_archive,
)

from polypvision.batch.discover import discover
from polypvision.batch.local import LocalEngine
from polypvision.batch.run import run_batch
from polypvision.batch.settings import AnnotateSettings, JobContext, sha256_file
from polypvision.cli import main
from polypvision.events import EventSettings, event_settings_of, find_events, read_log
from polypvision.settings import ExportSettings
from polypvision.sources.synthetic import read_stamp

ISSUE_COLUMNS = [
    "path",
    "frames_in",
    "frames_out",
    "unreadable_frames",
    "duration_s",
    "frames_with_polyp",
    "polyp_events",
    "status",
    "error",
]
EVENTS = ["--event-min-s", "0.3", "--event-gap-s", "0.5"]


def summary(out: Path) -> dict[str, dict]:
    with open(out / "summary.csv", newline="") as fh:
        return {r["path"]: r for r in csv.DictReader(fh)}


def batch(archive: Path, out: Path, model: Path, *extra: str) -> int:
    return main(
        [
            "batch",
            str(archive),
            "-o",
            str(out),
            "--model",
            str(model),
            "--fps",
            "10",
            "--workers",
            "2",
            "--threads",
            "1",
            "--quiet",
            *EVENTS,
            *extra,
        ]
    )


def partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if "partial" in p.name]


def procedure_partials(folder: Path) -> list[Path]:
    """Partial files of procedures, not of the run's own summary.csv / index.html."""
    return [p for p in partials(folder) if not p.name.startswith((".summary.", ".index."))]


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return make_archive(tmp_path_factory.mktemp("archive"))


@pytest.fixture(scope="module")
def first_run(archive, toy_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "run"
    rc = batch(archive, out, toy_model, "--masks")
    return rc, out


def test_every_procedure_gets_annotate_outputs_mirrored(first_run, archive):
    rc, out = first_run
    assert rc == 1, "one procedure is damaged: exit 1, the others done"
    rows = summary(out)
    assert list(next(iter(rows.values())))[:9] == ISSUE_COLUMNS
    assert set(rows) == {"a/c0.mp4", "a/c1.mp4", "b/frames", "b/broken.mp4"}
    for name, frames in (("a/c0", 16), ("a/c1", 17), ("b/frames", 55)):
        video, log = out / f"{name}.mp4", out / f"{name}.jsonl"
        decoded = decode_frames(video)
        assert len(decoded) == frames
        if name.startswith("a/"):
            assert [read_stamp(f) for f in decoded] == list(range(frames))
        assert [r["frame"] for r in read_log(log)] == list(range(frames))
        side = json.loads((out / f"{name}.meta.json").read_text())
        assert side["summary"]["frames"] == frames
        assert side["settings"]["events"] == {"min_duration_s": 0.3, "max_gap_s": 0.5}
        assert side["batch"]["model_sha256"] and side["batch"]["fingerprint"]
        assert len(list((out / f"{name}_masks").glob("*.png"))) == frames
        row = rows[f"{name}.mp4" if name.startswith("a/") else name]
        assert (
            row["status"] == "ok"
            and row["frames_out"] == str(frames)
            and row["frames_in"] == str(frames)
        )
        assert row["report"] == f"{name}.report.html" and (out / row["report"]).is_file()
        # what ran, plainly: the provider's reason is said once for the run, not in every row
        assert row["provider"] in ("CPU", "CUDA")
    assert not partials(out), "nothing half-written left behind"


def test_damaged_procedure_reported_while_the_others_succeed(first_run):
    _, out = first_run
    bad = summary(out)["b/broken.mp4"]
    assert (
        bad["status"] == "failed" and "cannot decode" in bad["error"] and "\n" not in bad["error"]
    )
    assert not list(out.glob("b/broken*")), "no output under a final name for the failed procedure"
    assert sum(r["status"] == "ok" for r in summary(out).values()) == 3


def test_batch_output_is_what_annotate_writes(first_run, archive, toy_model, tmp_path):
    _, out = first_run
    one = tmp_path / "c1.mp4"
    assert (
        main(
            [
                "annotate",
                str(archive / "a" / "c1.mp4"),
                "-o",
                str(one),
                "--log",
                str(tmp_path / "c1.jsonl"),
                "--model",
                str(toy_model),
                "--threads",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    assert log_lines_without_timing(tmp_path / "c1.jsonl") == log_lines_without_timing(
        out / "a" / "c1.jsonl"
    )
    for a, b in zip(decode_frames(one), decode_frames(out / "a" / "c1.mp4"), strict=True):
        assert (a == b).all()


def test_summary_and_report_count_the_events_of_the_jsonl(first_run):
    _, out = first_run
    row = summary(out)["b/frames"]
    records = read_log(out / "b" / "frames.jsonl")
    side = json.loads((out / "b" / "frames.meta.json").read_text())
    expected = find_events(records, event_settings_of(side), side["source"]["fps"])
    # The designed folder: red on 5-14 and 17-24 (one event), 32 alone (too short), 40-49.
    assert len(expected) == 2
    assert expected[0].start_frame <= 6 and 23 <= expected[0].end_frame <= 26
    assert 39 <= expected[1].start_frame <= 41
    assert row["polyp_events"] == "2" and row["frames_with_polyp"] == str(
        sum(r["polyp"] for r in records)
    )
    html = (out / "b" / "frames.report.html").read_text()
    table = re.findall(r'<tr class="event" ([^>]*)>', html)
    assert len(table) == len(expected)
    for attrs, ev in zip(table, expected):
        got = dict(re.findall(r'data-([\w-]+)="([^"]*)"', attrs))
        assert int(got["start-frame"]) == ev.start_frame and int(got["end-frame"]) == ev.end_frame
        assert float(got["start-s"]) == pytest.approx(ev.start_s, abs=1e-4)
        assert float(got["end-s"]) == pytest.approx(ev.end_s, abs=1e-4)
        span = [r for r in records[ev.start_frame : ev.end_frame + 1] if r["polyp"]]
        assert float(got["peak"]) == pytest.approx(max(r["peak"] for r in span), abs=1e-4)
        assert float(got["largest-area"]) == pytest.approx(max(r["area"] for r in span), abs=1e-5)
    assert html.count('src="data:image/jpeg;base64,') == len(expected), "a thumbnail per event"
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org/2000/svg", ""), (
        "self-contained"
    )
    index = (out / "index.html").read_text()
    for r in summary(out).values():
        if r["report"]:
            assert f'href="{r["report"]}"' in index


def test_rerun_skips_complete_and_redoes_partial(archive, toy_model, tmp_path):
    out = tmp_path / "out"
    assert batch(archive, out, toy_model) == 1
    c0_mtime = (out / "a" / "c0.mp4").stat().st_mtime_ns
    # c1: its log cut short; frames: its video gone; and an attempt's leftover temporary file.
    log = out / "a" / "c1.jsonl"
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:5]))
    (out / "b" / "frames.mp4").unlink()
    stale = out / "a" / ".c0.mp4.abc123.partial.mp4"
    stale.write_bytes(b"half")
    # An unrelated file that merely looks temporary is never touched.
    keep = out / "a" / ".notes.partial.txt"
    keep.write_text("mine")
    assert batch(archive, out, toy_model) == 1
    rows = summary(out)
    assert rows["a/c0.mp4"]["status"] == "done earlier"
    assert rows["a/c1.mp4"]["status"] == "ok" and rows["b/frames"]["status"] == "ok"
    assert rows["b/broken.mp4"]["status"] == "failed"
    assert (out / "a" / "c0.mp4").stat().st_mtime_ns == c0_mtime, (
        "a complete procedure is not rewritten"
    )
    assert len(read_log(log)) == 17 and len(decode_frames(out / "b" / "frames.mp4")) == 55
    assert rows["a/c0.mp4"]["frames_out"] == "16" and rows["a/c0.mp4"]["polyp_events"] != ""
    assert not stale.exists() and keep.read_text() == "mine"


def test_rerun_with_other_settings_redoes_and_new_event_settings_recount(
    archive, toy_model, tmp_path
):
    out = tmp_path / "out"
    batch(archive, out, toy_model)
    # Another event definition: nothing re-annotated, the counts and sidecars follow it.
    assert (
        main(
            [
                "batch",
                str(archive),
                "-o",
                str(out),
                "--model",
                str(toy_model),
                "--fps",
                "10",
                "--workers",
                "1",
                "--threads",
                "1",
                "--quiet",
                "--event-min-s",
                "0",
                "--event-gap-s",
                "0",
            ]
        )
        == 1
    )
    rows = summary(out)
    assert (
        rows["b/frames"]["status"] == "done earlier" and int(rows["b/frames"]["polyp_events"]) >= 3
    )
    side = json.loads((out / "b" / "frames.meta.json").read_text())
    assert side["settings"]["events"] == {"min_duration_s": 0.0, "max_gap_s": 0.0}
    assert (
        f'data-number="{rows["b/frames"]["polyp_events"]}"'
        in (out / "b" / "frames.report.html").read_text()
    )
    # Another threshold changes the annotation itself: everything is redone.
    assert batch(archive, out, toy_model, "--threshold", "0.9") == 1
    assert {r["status"] for p, r in summary(out).items() if p != "b/broken.mp4"} == {"ok"}


def _ctx(out: Path, model: Path) -> JobContext:
    out.mkdir(parents=True, exist_ok=True)
    return JobContext(
        out,
        model,
        sha256_file(model),
        AnnotateSettings(threads=1, export=ExportSettings(fps=10.0)),
        EventSettings(0.3, 0.5),
    )


def test_killed_worker_costs_one_attempt_and_is_retried(archive, toy_model, tmp_path, monkeypatch):
    monkeypatch.setenv(KILL_DIR_ENV, str(tmp_path))
    procs = [p for p in discover(archive) if p.out_rel.parent.name == "a"]
    engine = LocalEngine(workers=2, threads=1, retries=2, job=killed_once_job, poll_s=0.05)
    results = {
        r.path: r
        for r in run_batch(procs, _ctx(tmp_path / "out", toy_model), engine, show_progress=False)
    }
    assert results["a/c0.mp4"].status == "ok" and results["a/c0.mp4"].attempts == 2
    assert results["a/c1.mp4"].status == "ok" and results["a/c1.mp4"].attempts == 1
    assert len(decode_frames(tmp_path / "out" / "a" / "c0.mp4")) == 16
    assert not partials(tmp_path / "out")


def test_worker_dying_every_time_fails_only_its_procedure(
    archive, toy_model, tmp_path, monkeypatch
):
    monkeypatch.setenv(KILL_DIR_ENV, str(tmp_path))
    procs = [p for p in discover(archive) if p.out_rel.parent.name == "a"]
    engine = LocalEngine(workers=1, threads=1, retries=1, job=killed_always_job, poll_s=0.05)
    results = {
        r.path: r
        for r in run_batch(procs, _ctx(tmp_path / "out", toy_model), engine, show_progress=False)
    }
    bad = results["a/c0.mp4"]
    assert bad.status == "failed" and bad.attempts == 2 and "SIGKILL" in bad.error
    assert (tmp_path / "c0.attempts").read_text() == "2", "bounded: one try plus one retry"
    assert results["a/c1.mp4"].status == "ok"
    assert summary(tmp_path / "out")["a/c0.mp4"]["status"] == "failed"


def test_list_file_input(archive, toy_model, tmp_path):
    listing = tmp_path / "todo.txt"
    listing.write_text(
        f"# two of them\n{archive / 'a' / 'c1.mp4'}\n\n{archive / 'b' / 'frames'}\n"
        f"{archive / 'missing.mp4'}\n"
    )
    out = tmp_path / "out"
    assert batch(listing, out, toy_model) == 1
    rows = summary(out)
    assert [r["status"] for r in rows.values()] == ["ok", "ok", "failed"]
    assert (out / "a" / "c1.mp4").is_file() and (out / "b" / "frames.mp4").is_file()
    assert "input not found" in rows[str(archive / "missing.mp4")]["error"]


@pytest.mark.parametrize(
    "case",
    [
        "missing input",
        "output is a file",
        "output is the input",
        "address without ray",
        "broken model",
        "bad setting",
        "no ray",
    ],
)
def test_bad_input_is_one_line_exit_2(case, archive, toy_model, tmp_path, capsys, monkeypatch):
    args = [str(archive), "-o", str(tmp_path / "out"), "--model", str(toy_model), "--quiet"]
    if case == "missing input":
        args[0] = str(tmp_path / "nowhere")
    elif case == "output is a file":
        (tmp_path / "f").write_text("x")
        args[2] = str(tmp_path / "f")
    elif case == "output is the input":
        args[2] = str(archive)
    elif case == "address without ray":
        args += ["--address", "auto"]
    elif case == "broken model":
        (tmp_path / "m.onnx").write_bytes(b"nonsense")
        args[4] = str(tmp_path / "m.onnx")
    elif case == "bad setting":
        args += ["--event-min-s", "-1"]
    elif case == "no ray":
        monkeypatch.setitem(__import__("sys").modules, "ray", None)
        args += ["--engine", "ray"]
    assert main(["batch", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("polypvision: error:"), err
    assert not (tmp_path / "out" / "summary.csv").exists()


def test_report_command_for_a_single_annotate_output(archive, toy_model, tmp_path, capsys):
    out, log = tmp_path / "one.mp4", tmp_path / "one.jsonl"
    assert (
        main(
            [
                "annotate",
                str(archive / "b" / "frames"),
                "-o",
                str(out),
                "--log",
                str(log),
                "--fps",
                "10",
                "--model",
                str(toy_model),
                "--quiet",
            ]
        )
        == 0
    )
    assert main(["report", str(log), "--event-min-s", "0.3"]) == 0
    html = (tmp_path / "one.report.html").read_text()
    assert html.count('<tr class="event"') == 2
    # words a clinician reads: a model score, not a confidence; settings as text, not JSON
    assert "confidence</th>" not in html and "highest score</th>" in html
    assert "not a calibrated confidence" in " ".join(html.split())
    # the events' highest score is the one the alarm rests on (the log's "score")
    best = [round(e.score, 4) for e in find_events(read_log(log), EventSettings(0.3, 0.5))]
    assert [float(x) for x in re.findall(r'data-score="([0-9.]+)"', html)] == best
    assert '{"alpha"' not in html and "setting: smoothing</td><td>alpha 0.8" in html
    # the alarm rule the log was made with (the toy model's: anything outlined)
    assert "a polyp is reported when</td><td>anything is outlined" in html


def test_outputs_folder_inside_the_input_is_not_searched(archive, tmp_path):
    procs = discover(archive, archive / "a")
    assert all(p.out_rel.parent.name != "a" for p in procs)


def test_discovery_tree_collisions_hidden_and_order(tmp_path):
    (tmp_path / "x" / ".hidden").mkdir(parents=True)
    for name in ("x/case.mp4", "x/case.avi", "x/.hidden/h.mp4", "x/notes.txt", "top.MOV"):
        (tmp_path / name).write_bytes(b"v")
    (tmp_path / "x" / "case").mkdir()
    (tmp_path / "x" / "case" / "0001.png").write_bytes(b"p")
    procs = discover(tmp_path)
    got = {p.label: p.out_rel.as_posix() for p in procs}
    assert got == {
        "x/case": "x/case",
        "x/case.avi": "x/case_avi",
        "x/case.mp4": "x/case_mp4",
        "top.MOV": "top",
    }
    assert [p.id for p in procs] == list(range(len(procs)))


def test_progress_line_with_an_injected_clock():
    from polypvision.batch.progress import RunProgress
    from polypvision.batch.result import ProcedureResult

    now = [100.0]
    st = RunProgress(total=4, clock=lambda: now[0])
    st.started(0)
    st.started(1)
    st.progress(0, 50, 100)
    st.progress(1, 30, None)
    now[0] = 102.0
    assert st.fps() == pytest.approx(40.0)
    st.finished(ProcedureResult(0, "p0", "p0", "ok", frames_out=100))
    st.finished(ProcedureResult(2, "p2", "p2", "done earlier", frames_out=60))
    # frames done: 100 finished + 30 running = 130 in 2 s; to come: 80 - 30 for p1 (mean size),
    # 80 for the one not started.
    assert st.fps() == pytest.approx(65.0)
    assert st.eta_s() == pytest.approx((50 + 80) / 65.0)
    line = st.line()
    assert line.startswith("2/4 procedures, 1 ok, 1 already done, 0 failed, 1 running")
    assert "65.0 frames/s" in line and "ETA 2s" in line


def test_summary_is_up_to_date_while_the_run_goes(archive, toy_model, tmp_path, monkeypatch):
    """After each procedure, summary.csv already holds its row, the others ``not run``
    (a crashed run still leaves an account)."""
    from polypvision.batch.run import Book

    seen: list[list[str]] = []
    original = Book.add

    def add(self, result):
        original(self, result)
        seen.append([r["status"] for r in summary(tmp_path / "out").values()])

    monkeypatch.setattr(Book, "add", add)
    procs = [p for p in discover(archive) if p.out_rel.parent.name == "a"]
    run_batch(
        procs,
        _ctx(tmp_path / "out", toy_model),
        LocalEngine(1, 1, poll_s=0.05),
        show_progress=False,
    )
    assert seen == [["ok", "not run"], ["ok", "ok"]]


def test_memory_of_a_worker_is_reported(first_run):
    _, out = first_run
    assert all(float(r["worker_rss_mb"]) > 0 for r in summary(out).values())


def test_no_worker_left_behind(archive, toy_model, tmp_path):
    import multiprocessing

    procs = discover(archive)[:1]
    run_batch(
        procs,
        _ctx(tmp_path / "out", toy_model),
        LocalEngine(2, 1, poll_s=0.05),
        show_progress=False,
    )
    assert not multiprocessing.active_children(), "every worker joined before run() returns"


def test_thumbnail_frames_are_the_frames_asked_for(archive):
    from polypvision.report.thumbs import frames_at

    got = frames_at(archive / "a" / "c1.mp4", [0, 5, 11, 16])
    assert {pos: read_stamp(img) for pos, img in got.items()} == {0: 0, 5: 5, 11: 11, 16: 16}


def test_sigterm_mid_run_leaves_no_partial_output_and_an_account(toy_model, tmp_path):
    """A scheduler's SIGTERM: workers stop, annotate removes its temporary files,
    the summary says what ran."""
    import signal
    import subprocess
    import sys

    from polypvision.demo import write_synthetic_clip

    (tmp_path / "in").mkdir()
    for i in range(2):
        write_synthetic_clip(tmp_path / "in" / f"long{i}.mp4", 400, 320, 240, 25.0, seed=i)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "polypvision",
            "batch",
            str(tmp_path / "in"),
            "-o",
            str(out),
            "--model",
            str(toy_model),
            "--workers",
            "1",
            "--threads",
            "1",
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        # A procedure's own partial file: summary.csv and index.html are written through the
        # same kind of temporary file before any procedure starts.
        while not procedure_partials(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # waiting for a condition (a temporary file exists), not a duration
        assert procedure_partials(out), "the first procedure started writing"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert "error" not in err  # Ctrl-C / SIGTERM is the user's choice, not an error
    assert not partials(out)
    rows = summary(out)
    assert len(rows) == 2 and rows["long1.mp4"]["status"] == "not run"
    assert rows["long1.mp4"]["error"] == "interrupted"
    assert rows["long0.mp4"]["status"] in ("ok", "not run")
    if (
        rows["long0.mp4"]["status"] == "not run"
    ):  # the usual case: stopped mid-procedure, nothing published
        assert not (out / "long0.mp4").exists()


def test_batch_runs_without_qt_tensorflow_or_ray(tmp_path, toy_model, clip_small):
    """A cluster worker or a server installs neither the app nor Ray for the local engine."""
    import subprocess
    import sys
    import textwrap

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "one.mp4").write_bytes(clip_small.read_bytes())
    script = textwrap.dedent(f"""
        import importlib.abc, sys
        BLOCKED = ('PySide6', 'shiboken6', 'tensorflow', 'tf2onnx', 'keras', 'ray')
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in BLOCKED:
                    raise ImportError('blocked: ' + name)
        sys.meta_path.insert(0, Block())
        import polypvision.batch.local, polypvision.batch.ray_engine
        import polypvision.report, polypvision.events
        from polypvision.cli import main
        rc = main(['batch', {str(tmp_path / "in")!r}, '-o', {str(tmp_path / "out")!r},
                   '--model', {str(toy_model)!r}, '--workers', '1', '--quiet'])
        assert rc == 0, rc
        bad = [m for m in sys.modules
               if m.split('.')[0] in ('PySide6', 'shiboken6', 'tensorflow', 'ray')]
        assert not bad, bad
        print('ok')
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr
    assert (tmp_path / "out" / "one.report.html").is_file()


def test_workers_that_cannot_start_stop_the_run_with_one_line(
    archive, toy_model, tmp_path, monkeypatch
):
    import batch_broken_start

    from polypvision.errors import UserError

    monkeypatch.setenv("PV_TEST_BREAK_START", "1")
    procs = discover(archive)
    with pytest.raises(UserError, match="__main__"):
        run_batch(
            procs,
            _ctx(tmp_path / "out", toy_model),
            LocalEngine(1, 1, job=batch_broken_start.job, poll_s=0.05),
            show_progress=False,
        )
    assert {r["status"] for r in summary(tmp_path / "out").values()} == {"not run"}


def test_the_provider_and_its_reason_are_said_once_per_run(archive, toy_model, tmp_path, capsys):
    batch(archive / "a", tmp_path / "out", toy_model)
    err = capsys.readouterr().err
    assert err.count("the model ran on CPU") == 1, err
    assert {r["provider"] for r in summary(tmp_path / "out").values()} == {"CPU"}
