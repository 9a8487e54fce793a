"""Progress bars (tqdm): a bar on a terminal, a few plain lines in a log."""

from __future__ import annotations

import io

from polypvision.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_line_every_interval_and_one_at_the_end():
    t = [0.0]
    out = io.StringIO()
    p = Progress(
        100, desc="[run] epoch 1/2", unit="step", stream=out, every_s=5.0, clock=lambda: t[0]
    )
    for i in range(1, 101):
        t[0] += 0.1
        p.update_to(i, loss="0.5000")
    p.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 3  # at the start, after 5 s, at the end
    assert lines[-1].startswith(
        "[run] epoch 1/2 100/100 step [00:09<00:00, 10.00step/s, loss=0.5000]"
    )


def test_an_unfinished_run_ends_without_a_last_line_unless_asked():
    out = io.StringIO()
    p = Progress(10, stream=out, every_s=60.0, clock=lambda: 0.0)
    p.update_to(3)
    p.close()
    assert len(out.getvalue().splitlines()) == 1
    out = io.StringIO()
    p = Progress(
        10,
        stream=out,
        every_s=60.0,
        describe=lambda: "3/10 procedures, 1 failed",
        clock=lambda: 0.0,
    )
    p.update_to(3)
    p.write("polypvision: failed: x.mp4: broken")
    p.close(last_line=True)
    assert out.getvalue().splitlines() == [
        "3/10 procedures, 1 failed",
        "polypvision: failed: x.mp4: broken",
        "3/10 procedures, 1 failed",
    ]


def test_a_terminal_gets_a_tqdm_bar_and_quiet_means_nothing():
    out = Terminal()
    p = Progress(4, unit="frame", stream=out)
    for i in range(1, 5):
        p.update_to(i)
    p.close()
    text = out.getvalue()
    assert "\r" in text and "4/4" in text and "100%" in text
    quiet = Terminal()
    p = Progress(4, stream=quiet, enabled=False)
    p.update_to(4)
    p.write("x")
    p.close()
    assert quiet.getvalue() == ""
