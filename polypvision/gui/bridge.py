"""Turning callbacks from worker threads into Qt signals.

Pipeline callbacks fire on the reader / inference / export threads, where touching a widget
is undefined behaviour. Emitting a signal of a QObject that lives in the GUI thread queues the
call into the GUI thread's event loop, which is the only safe hand-off Qt offers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

log = logging.getLogger(__name__)


class Bridge(QObject):
    """Signals that worker threads emit; connected slots run in the GUI thread."""

    error = Signal(str)  # a one-line message for the status bar
    frame_ready = Signal()  # the live view has a picture waiting (at most one pending)
    ended = Signal()
    done = Signal(object, object)  # (callback, value): finish a background job in the GUI thread
    failed = Signal(object, object)  # (callback, exception)
    progress = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # Bound methods of this QObject (not lambdas) so the connection has a receiver living
        # in the GUI thread, which is what makes Qt queue the call there.
        self.done.connect(self._deliver)
        self.failed.connect(self._deliver)

    @Slot(object, object)
    def _deliver(self, callback: Callable[[Any], None], value: Any) -> None:
        callback(value)


def run_async(
    bridge: Bridge,
    name: str,
    fn: Callable[[], Any],
    on_done: Callable[[Any], None],
    on_error: Callable[[BaseException], None],
) -> threading.Thread:
    """Run ``fn`` on a named daemon thread; deliver its result or exception in the GUI thread.

    Opening a stream or loading a model can take seconds; doing it here keeps the window
    responsive. Daemon threads so that a hung driver call cannot keep the process alive.
    """

    def work() -> None:
        try:
            value = fn()
        except BaseException as exc:  # handed to the GUI, which shows it
            log.info("%s failed: %s", name, exc)
            bridge.failed.emit(on_error, exc)
        else:
            bridge.done.emit(on_done, value)

    t = threading.Thread(target=work, name=name, daemon=True)
    t.start()
    return t
