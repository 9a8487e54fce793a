"""The app's side of issue 16: recordings that survive signals and full disks (item 5), a killed
session's recording recovered at the next start (item 6), a damaged clip played and exported to
its end and reported as partial (item 1), and an export that asks before replacing (item 10).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from tiny_disk import tiny_disk

from polypvision.sources.synthetic import read_stamp

HELPER = Path(__file__).with_name("_record_app.py")


def decode(path: Path) -> list:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames


def visible_mp4(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.mp4") if not p.name.startswith("."))


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


def _run_app_until(
    sig: int, tmp_path: Path, clip: Path, toy_model: Path, frames: int = 30
) -> tuple[subprocess.Popen, str, Path]:
    out = tmp_path / "recordings"
    out.mkdir()
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    p = subprocess.Popen(
        [
            sys.executable,
            str(HELPER),
            str(clip),
            str(toy_model),
            str(out),
            str(tmp_path / "s.ini"),
            str(frames),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = p.stdout.readline().strip()
        assert line == "RECORDING", (line, p.stderr.read() if p.poll() is not None else "")
        p.send_signal(sig)
        stdout, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    return p, stdout, out


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["sigterm", "sighup"])
def test_logout_or_a_closed_terminal_finishes_the_recording(tmp_path, frames_clip, toy_model, sig):
    """SIGTERM (logout, shutdown) or SIGHUP while recording: the app closes as if the window was
    closed, and the recording is complete under its own name (it was a 48-byte hidden file)."""
    p, stdout, out = _run_app_until(sig, tmp_path, frames_clip, toy_model)
    assert p.returncode == 0, stdout
    assert "Recording saved" in stdout
    saved = visible_mp4(out)
    assert len(saved) == 1 and hidden(out) == []
    assert len(decode(saved[0])) >= 30


@pytest.mark.slow
def test_a_killed_sessions_recording_is_recovered_at_the_next_start(
    tmp_path, frames_clip, toy_model, make_window, app_settings, qtbot
):
    # 75 frames sent: the encoder's look-ahead still holds some, but a whole fragment (a second) is
    # out
    p, _, out = _run_app_until(signal.SIGKILL, tmp_path, frames_clip, toy_model, frames=75)
    left = [out / n for n in hidden(out)]
    assert len(left) == 1 and visible_mp4(out) == []
    t = time.time() - 60
    os.utime(left[0], (t, t))
    app_settings.set("output/dir", str(out))
    win = make_window(frames_clip)
    qtbot.waitUntil(
        lambda: "recovered" in win.statusBar().currentMessage() or bool(visible_mp4(out)),
        timeout=5000,
    )
    saved = visible_mp4(out)
    assert len(saved) == 1 and hidden(out) == []
    frames = decode(saved[0])
    assert len(frames) >= 25 and [read_stamp(f) for f in frames[:3]] != []


@pytest.mark.slow
def test_a_disk_that_fills_while_recording_stops_rec_and_keeps_the_recording(
    make_window, frames_clip, app_settings, tmp_path, qtbot
):
    with tiny_disk(tmp_path / "disk", 64) as disk:
        app_settings.set("output/dir", str(disk))
        win = make_window(frames_clip)
        win.player.runner.loop = True
        win.toggle_record()
        assert win.player.recording
        qtbot.waitUntil(
            lambda: not win.player.recording, timeout=60000
        )  # stopped by itself: the disk is full
        msg = win.statusBar().currentMessage()
        assert "No space left on device" in msg and "are saved in" in msg, msg
        qtbot.waitUntil(
            lambda: not win.record_bar.elapsed.isVisible(), timeout=2000
        )  # REC no longer counts
        saved = visible_mp4(disk)
        assert len(saved) == 1 and hidden(disk) == []
        assert len(decode(saved[0])) >= 25
        win.close()


def test_a_damaged_clip_exports_to_its_end_and_says_partial(make_window, tmp_path, qtbot):
    sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))
    from relhelpers import damage, ffmpeg_decodable, synthetic_frames, write_video

    clip = write_video(
        tmp_path / "clean.mp4", synthetic_frames(100), gop=10, options={"movflags": "+faststart"}
    )
    bad = damage(clip, tmp_path / "damaged.mp4")
    decodable = ffmpeg_decodable(bad)
    win = make_window(bad)
    dlg = win.export_clip()
    out = tmp_path / "export.mp4"
    dlg.path_edit.setText(str(out))
    dlg.start()
    qtbot.waitUntil(lambda: not dlg.running and dlg.result_text != "", timeout=30000)
    assert "Partial export" in dlg.result_text and f"{decodable} of 100" in dlg.result_text
    assert len(decode(out)) == decodable


def test_export_asks_before_replacing_an_earlier_export(
    make_window, frames_clip, tmp_path, qtbot, monkeypatch
):
    from PySide6.QtWidgets import QMessageBox

    out = tmp_path / "clip-annotated.mp4"
    out.write_bytes(b"yesterday's export")
    asked: list[str] = []
    answer = {"button": QMessageBox.StandardButton.No}

    def question(parent, title, text, *a, **k):
        asked.append(text)
        return answer["button"]

    monkeypatch.setattr(QMessageBox, "question", question)
    win = make_window(frames_clip)
    dlg = win.export_clip()
    dlg.path_edit.setText(str(out))
    dlg.start()
    assert len(asked) == 1 and str(out) in asked[0]
    assert not dlg.running and out.read_bytes() == b"yesterday's export"
    answer["button"] = QMessageBox.StandardButton.Yes
    dlg.start()
    qtbot.waitUntil(lambda: not dlg.running and dlg.result_text != "", timeout=30000)
    assert "Exported" in dlg.result_text and len(decode(out)) == 60
