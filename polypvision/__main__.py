"""``python -m polypvision`` and the installed ``polypvision`` command.

An interrupt before any output exists must end like every other one: one line, status 130,
no traceback. Python turns Ctrl-C into an exception wherever the main thread happens to be,
and during the first imports that is inside some library's import (numpy then reports a
broken installation instead of the interrupt). So until a command starts writing, Ctrl-C ends
the process at once (there is nothing to clean up yet); a command switches to the ordinary
exception, and its clean-up, when it creates its first output
(:func:`polypvision.cli.interrupts_raise`).
"""

from __future__ import annotations

import os
import signal
import sys


def quit_at_once(signum: int, frame: object) -> None:
    os.write(2, b"polypvision: interrupted; no output was written\n")
    os._exit(130)


def run() -> None:
    signal.signal(signal.SIGINT, quit_at_once)
    from polypvision.cli import main

    sys.exit(main())


if __name__ == "__main__":
    run()
