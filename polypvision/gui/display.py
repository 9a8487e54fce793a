"""The display side of the live view: pictures as they arrive, figures on a timer.

Every picture the pipeline hands over is shown the moment it arrives (the runner's
``on_frame`` becomes a queued Qt signal, at most one pending), so the video keeps the
source's rate and the overlay's slower rate never holds it back. A slower timer refreshes the
stats, the position, the timeline and the recording indicator, and logs the figures
(``polypvision -v gui``) at least every ``LOG_EVERY_S``. (A lost live signal is the session
controller's to notice: :meth:`polypvision.viewer.controller.SessionController.poll`.)
"""

from __future__ import annotations

import logging
import time

from PySide6.QtWidgets import QApplication

from polypvision.gui.record_bar import RecordBar
from polypvision.gui.transport import TransportBar
from polypvision.gui.video_view import VideoView
from polypvision.pipeline.stats import format_stats
from polypvision.viewer.alert import AppearanceAlert
from polypvision.viewer.player import Player

log = logging.getLogger(__name__)

STATS_EVERY_S = 0.25
LOG_EVERY_S = 5.0  # scripts expect a stats line at least every 10 s


class Display:
    """Owns what is refreshed: frame, HUD, alert, position, timeline, REC."""

    def __init__(self, view: VideoView, transport: TransportBar, record_bar: RecordBar) -> None:
        self.view, self.transport, self.record_bar = view, transport, record_bar
        self.alert = AppearanceAlert()
        self.alert_enabled = False
        self._alerted = None  # the overlay the alert last looked at
        self._last_stats = 0.0
        self._last_log = time.perf_counter()

    def reset(self) -> None:
        """A new player: forget what was shown."""
        self._alerted = None
        self.alert.reset()

    def show_newest(self, p: Player) -> None:
        """Put the newest picture on screen (called once per picture the pipeline hands over)."""
        item = p.runner.take_display()
        if item is None:
            return
        self.view.set_frame(item.image)
        now = time.perf_counter()
        p.runner.shown(item, now)
        r = item.overlay
        if r is not None and r is not self._alerted:
            self._alerted = r
            if self.alert.update(r.detection.present, now) and self.alert_enabled:
                QApplication.beep()
                self.view.flash()

    def tick(self, p: Player) -> bool:
        """One timer refresh; True when the slower stats/labels were updated this time."""
        now = time.perf_counter()
        self.transport.show_position(
            p.runner.position, p.info.frame_count, p.runner.paused, p.info.live, p.runner.position_s
        )
        if now - self._last_stats < STATS_EVERY_S:
            return False
        self._last_stats = now
        lines = format_stats(p.stats())
        self.view.hud_lines = lines
        self.view.update()
        self.transport.show_events()
        if now - self._last_log >= LOG_EVERY_S:
            self._last_log = now
            log.info("%s", " | ".join(lines))
        # The HUD on the video carries the figures; the bar repeats them only when it is off.
        self.record_bar.show_stats(None if self.view.show_hud else lines)
        rec = p.recorder
        # A failed recording is stopped at once (SessionController.poll): no timer keeps counting
        # over a file that is no longer growing.
        if rec is not None and rec.error is None:
            lost = rec.lost_so_far()
            self.record_bar.show_recording(rec.elapsed_s, lost, rec.loss_text() if lost else "")
        else:
            self.record_bar.show_recording(None)
        return True
