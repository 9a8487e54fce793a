"""Progress bars from tqdm that stay readable in logs.

On a terminal a :class:`Progress` is a tqdm bar redrawn in place. Anywhere else (a log file, a
pipe, a job scheduler's output) redrawing in place would pile carriage returns into one endless
line, so it writes one plain line at most every ``every_s`` seconds and a last one at the end,
formatted by tqdm all the same (count, rate, elapsed and remaining time), or by ``describe``
when the caller has better figures than a count (the batch run's frames per second and ETA).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["Progress"]

# One line per report in a log: no bar, the figures tqdm computes.
LOG_FORMAT = "{desc}{n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
LOG_FORMAT_OPEN = "{desc}{n_fmt} {unit} [{elapsed}, {rate_fmt}{postfix}]"  # no known total
TTY_REFRESH_S = 0.2
DEFAULT_COLUMNS, DEFAULT_ROWS = 100, 20


def _columns(stream: TextIO) -> int:
    """The terminal's width (0 when it reports none, as a bare pseudo-terminal may)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (OSError, ValueError):
        return False


class Progress:
    """``update_to(n)`` as work gets done; ``write(line)`` for a message of its own; ``close()``."""

    def __init__(
        self,
        total: int | None = None,
        *,
        desc: str = "",
        unit: str = "it",
        stream: TextIO | None = None,
        enabled: bool = True,
        every_s: float = 30.0,
        describe: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled, self.every_s, self.clock, self.describe = enabled, every_s, clock, describe
        self.tty = _is_tty(self.stream)
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.postfix = ""
        self._start = clock()
        self._last_line: float | None = None
        self._said_n: int | None = None  # the count the last log line showed
        self._bar: tqdm | None = None
        if enabled and self.tty:
            # A terminal that reports no size (a bare pseudo-terminal) would make tqdm draw nothing.
            sized = _columns(self.stream) > 0
            self._bar = tqdm(
                total=total,
                desc=desc or None,
                unit=unit,
                file=self.stream,
                dynamic_ncols=sized,
                ncols=None if sized else DEFAULT_COLUMNS,
                nrows=None if sized else DEFAULT_ROWS,
                mininterval=TTY_REFRESH_S,
                leave=True,
                bar_format="{bar:20}| {desc}" if describe is not None else None,
            )

    def update_to(
        self, n: int, total: int | None = None, *, force: bool = False, **postfix: Any
    ) -> None:
        """The work done so far is ``n`` (of ``total``, when it became known);
        ``force`` shows it now."""
        if total is not None and total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
        self.n = n
        if postfix:
            self.postfix = ", ".join(f"{k}={v}" for k, v in postfix.items())
        if not self.enabled:
            return
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix_str(self.postfix, refresh=False)
            if self.describe is not None:
                self._bar.set_description_str(self.describe(), refresh=False)
            self._bar.update(n - self._bar.n)
            if force:
                self._bar.refresh()
            return
        now = self.clock()
        if force or self._last_line is None or now - self._last_line >= self.every_s:
            self._line(now)

    def set_description(self, desc: str) -> None:
        self.desc = desc
        if self._bar is not None:
            self._bar.set_description_str(desc, refresh=False)

    def text(self, now: float | None = None) -> str:
        """The plain line a log gets."""
        if self.describe is not None:
            return self.describe()
        elapsed = (self.clock() if now is None else now) - self._start
        fmt = LOG_FORMAT if self.total else LOG_FORMAT_OPEN
        desc = f"{self.desc} " if self.desc else ""
        return tqdm.format_meter(
            self.n,
            self.total,
            elapsed,
            prefix=desc,
            unit=self.unit,
            bar_format=fmt,
            postfix=self.postfix or None,
        )

    def _line(self, now: float) -> None:
        self._last_line, self._said_n = now, self.n
        self.stream.write(self.text(now) + "\n")
        self.stream.flush()

    def write(self, message: str) -> None:
        """A line of its own (a warning, a failure) without breaking the bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            self.stream.write(message + "\n")
            self.stream.flush()

    def close(self, *, last_line: bool | None = None) -> None:
        """The bar's final state; in a log, a last line when the work is complete and the last
        line did not show it yet (``last_line`` True: always, False: never)."""
        if not self.enabled:
            return
        if self._bar is not None:
            if self.describe is not None:
                self._bar.set_description_str(self.describe(), refresh=False)
            self._bar.close()
            self._bar = None
        else:
            complete = self.total is None or self.n >= self.total
            if last_line or (last_line is None and complete and self._said_n != self.n):
                self._line(self.clock())
        self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
