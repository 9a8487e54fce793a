"""The app's session state machine, without Qt: what plays, with which model,
and what runs beside it.

One :class:`SessionController` per window. It owns the playing
:class:`~polypvision.viewer.player.Player` (at most one), the loaded model, the source that waits
for a model, the overlay settings, and the outputs in progress (a recording, an export, a clip
scan), and it turns user commands into state changes. The window keeps layout and wiring: it
forwards commands here and shows what the controller reports through a :class:`SessionEvents`
(status-bar messages, placeholders, the banner of a lost live signal or of a failed source
with its reopen action, the source's facts).

Threads: every method is called on one thread (the window's). Opening a source and loading a
model take seconds, so they go through ``run`` (the window passes one that works on a worker
thread and delivers the result back on its own thread; the default runs them at once, which is
what the tests use); a request made while another of its kind is in flight supersedes it, the
older result being dropped (a stale source closed). The player's ``on_frame``, ``on_error`` and
``on_end`` are :class:`SessionEvents` methods called on worker threads; the window bridges them
and calls :meth:`SessionController.ended` back on its thread.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polypvision.errors import describe_error
from polypvision.model.session import Segmenter
from polypvision.pipeline.engine import Cancelled, Progress
from polypvision.pipeline.processor import FrameProcessor
from polypvision.pipeline.stats import format_stats
from polypvision.sources import source_kind
from polypvision.sources.base import FrameSource
from polypvision.viewer.export import ExportJob, ExportPlan
from polypvision.viewer.opening import load_blocking, open_blocking
from polypvision.viewer.overlay_settings import OverlaySettings
from polypvision.viewer.player import Player

log = logging.getLogger(__name__)

__all__ = ["Phase", "SessionController", "SessionEvents", "SessionStatus", "run_now"]

LOST = ("signal lost", "reconnecting")  # a live source's own retries are under way
EXPORT_WAIT_S = 1.0  # how long closing the window waits for a cancelled export to wind down

Runner = Callable[
    [str, Callable[[], Any], Callable[[Any], None], Callable[[BaseException], None]], None
]


class Phase(enum.Enum):
    """Where the session is; :attr:`SessionStatus.phase`."""

    IDLE = "idle"  # nothing opened yet (or the last source failed to open)
    OPENING = "opening"  # a source is being opened, nothing plays yet
    WAITING_FOR_MODEL = "waiting for a model"  # a source is open; no model is loaded
    PLAYING = "playing"
    PAUSED = "paused"
    ENDED = "ended"  # a clip played to its end (paused there)
    SIGNAL_LOST = "signal lost"  # a live source went silent; reconnecting
    # The video stopped on an error (a capture driver that died, a model that crashed): nothing
    # retries by itself, so the user is told why and offered :meth:`SessionController.reopen`.
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True)
class SessionStatus:
    phase: Phase
    spec: str | None  # what plays
    opening: str | None  # what is being opened (the playing source keeps playing meanwhile)
    loading_model: bool
    recording: bool
    exporting: bool
    scanning: bool
    live: bool
    seekable: bool
    position: int
    frame_count: int | None


def run_now(
    name: str,
    fn: Callable[[], Any],
    on_done: Callable[[Any], None],
    on_error: Callable[[BaseException], None],
) -> None:
    """The default ``run``: at once, on the calling thread."""
    try:
        value = fn()
    except Exception as exc:
        on_error(exc)
    else:
        on_done(value)


class SessionEvents:
    """What the controller tells its window. Every method is optional (the defaults do nothing);
    ``frame_ready``, ``worker_error`` and ``player_ended`` are called on worker threads."""

    # -- messages ------------------------------------------------------------------------------
    def message(self, text: str, timeout_ms: int = 0) -> None:
        """A status line."""

    def error(self, text: str) -> None:
        """A one-line problem (the session goes on)."""

    def placeholder(self, text: str, *, clear: bool = False) -> None:
        """Nothing plays: say why in the video's place (``clear``: drop the last picture too)."""

    # -- sources, models, players ------------------------------------------------------------------
    def source_opened(self, spec: str, source: FrameSource) -> None:
        """A source opened (it plays now, or once a model is loaded)."""

    def player_ready(self, player: Player) -> None:
        """A new player is about to start: adapt the controls to it."""

    def model_loading(self, path: Path | None, provider: str) -> None:
        """A model is being loaded (None: the shipped default)."""

    def model_shown(self, segmenter: Segmenter | None, provider: str) -> None:
        """The model in use (after a load, or after a failed one: the one still running)."""

    def model_loaded(self, segmenter: Segmenter, remembered: bool) -> OverlaySettings | None:
        """A new model is in use; return the overlay settings to run it with (None: unchanged)."""
        return None

    def signal(self, lost: bool, description: str) -> None:
        """A live source lost its signal (reconnecting), or got it back."""

    def source_failed(self, description: str, reason: str) -> None:
        """The video stopped on an error and nothing retries: say why, offer to reopen."""

    def recovered(self, text: str) -> None:
        """A recording a killed session left behind was recovered: news the user must see (a
        status line would be overwritten at once by the next one)."""
        self.message(text, 15000)

    # -- from worker threads -----------------------------------------------------------------------
    def frame_ready(self) -> None:
        """The player has a picture waiting (worker thread)."""

    def worker_error(self, exc: BaseException) -> None:
        """The pipeline failed (worker thread)."""

    def player_ended(self) -> None:
        """The clip reached its end (worker thread); the window then calls ``ended()``."""


class SessionController:
    """The state of one viewing session and the commands that change it (see the module's doc)."""

    def __init__(
        self,
        events: SessionEvents | None = None,
        *,
        provider: str = "auto",
        overlay: OverlaySettings | None = None,
        loop: bool = False,
        synchronous: bool = False,
        output_dir: Callable[[], Path] | None = None,
        run: Runner = run_now,
        open_source: Callable[..., FrameSource] = open_blocking,
        load_model: Callable[[Path | None, str], Segmenter] = load_blocking,
    ) -> None:
        self.events = events or SessionEvents()
        self.provider = provider
        self.overlay = overlay or OverlaySettings()
        self.loop, self.synchronous = loop, synchronous
        self.output_dir = output_dir or Path.cwd
        self.run, self._open, self._load = run, open_source, load_model
        self.player: Player | None = None
        self.segmenter: Segmenter | None = None
        self.pending: tuple[str, FrameSource] | None = None  # an opened source waiting for a model
        # only a model the user picked; None: the shipped default
        self.model_choice: Path | None = None
        self.no_model_text = ""
        self.export: ExportJob | None = None
        self.closed = False
        self._latest: dict[str, int] = {}  # newest request per kind ("source", "model")
        self._in_flight: dict[str, str] = {}  # kind -> what is being opened or loaded
        self._live_state = "ok"
        self._failed = False  # the playing source's failure was reported
        self._reopen: tuple[str, FrameSource | None, dict[str, Any]] | None = None

    # -- state ---------------------------------------------------------------------------------
    @property
    def phase(self) -> Phase:
        p = self.player
        if self.closed:
            return Phase.CLOSED
        if p is None:
            if self.pending is not None:
                return Phase.WAITING_FOR_MODEL
            return Phase.OPENING if "source" in self._in_flight else Phase.IDLE
        if p.runner.error is not None:
            return Phase.FAILED
        if p.info.live and self._live_state in LOST:
            return Phase.SIGNAL_LOST
        if p.runner.ended:
            return Phase.ENDED
        return Phase.PAUSED if p.runner.paused else Phase.PLAYING

    def status(self) -> SessionStatus:
        p = self.player
        return SessionStatus(
            phase=self.phase,
            spec=p.spec if p is not None else None,
            opening=self._in_flight.get("source"),
            loading_model="model" in self._in_flight,
            recording=p is not None and p.recording,
            exporting=self.exporting,
            scanning=p is not None and p.scanning,
            live=bool(p is not None and p.info.live),
            seekable=p is not None and p.seekable,
            position=p.runner.position if p is not None else -1,
            frame_count=p.info.frame_count if p is not None else None,
        )

    @property
    def exporting(self) -> bool:
        return self.export is not None and self.export.running

    # -- background requests, newest wins ----------------------------------------------------------
    def _submit(
        self,
        kind: str,
        what: str,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        on_stale: Callable[[Any], None] | None = None,
    ) -> None:
        token = self._latest.get(kind, 0) + 1
        self._latest[kind] = token
        self._in_flight[kind] = what

        def done(value: Any) -> None:
            if token != self._latest[kind]:
                if on_stale is not None:
                    on_stale(value)
                return
            self._in_flight.pop(kind, None)
            on_done(value)

        def failed(exc: BaseException) -> None:
            if token == self._latest[kind]:
                self._in_flight.pop(kind, None)
                on_error(exc)

        self.run(f"pv-load-{kind}", fn, done, failed)

    # -- sources ---------------------------------------------------------------------------------
    def open(self, spec: str, source: FrameSource | None = None, **kwargs: Any) -> None:
        """Open ``spec`` (or play the built, unopened ``source`` under that name); the playing
        source keeps playing until the new one is open."""
        spec = str(spec)
        self.events.message(f"Opening {spec}\u2026")
        if self.player is None:
            self.events.placeholder(f"Opening {spec}\u2026")
        self._submit(
            "source",
            spec,
            lambda: self._open(spec, source, **kwargs),
            lambda src: self._source_opened(spec, src, (spec, source, kwargs)),
            lambda exc: self._open_failed(spec, exc),
            on_stale=lambda src: src.close(),
        )

    def _open_failed(self, spec: str, exc: BaseException) -> None:
        msg = describe_error(exc)
        self.events.error(msg)
        if self.player is None:
            self.events.placeholder(
                f"Could not open {spec}\n\n{msg}\n\nDrop a video here or use File \u25b8 Open.",
                clear=True,
            )

    def _source_opened(
        self,
        spec: str,
        source: FrameSource,
        again: tuple[str, FrameSource | None, dict[str, Any]] | None = None,
    ) -> None:
        if self.closed:  # a slow stream answered after the window was closed
            source.close()
            return
        self._reopen = again or (spec, None, {})
        if self.pending is not None:
            self.pending[1].close()
        self.pending = (spec, source)
        self.events.source_opened(spec, source)
        for w in source.warnings:
            self.events.message(w, 8000)
        if self.segmenter is None:
            self.events.placeholder(self.no_model_text or "Loading the model\u2026")
            return
        self._start_pending()

    def _processor(self, segmenter: Segmenter) -> FrameProcessor:
        return FrameProcessor(segmenter, settings=self.overlay.stream_settings(segmenter))

    def _start_pending(self) -> None:
        assert self.pending is not None and self.segmenter is not None
        spec, source = self.pending
        self.pending = None
        self.stop_player()
        ev = self.events
        self.player = Player(
            spec,
            source,
            self._processor(self.segmenter),
            loop=self.loop,
            mode="sync" if self.synchronous else "pass-through",
            on_frame=ev.frame_ready,
            on_error=ev.worker_error,
            on_end=ev.player_ended,
        )
        self._live_state = "ok"
        self._failed = False
        ev.player_ready(self.player)
        self.player.start()
        info = source.info
        assert info is not None
        ev.message(f"Playing {info.description}", 4000)

    def stop_player(self) -> Path | None:
        """Stop what plays (finishing its recording); returns the saved recording, if any."""
        p, self.player = self.player, None
        if p is None:
            return None
        # The figures the user last saw, for the log (``polypvision -v gui``).
        log.info("stats for %s: %s", p.spec, " | ".join(format_stats(p.stats())))
        rec = p.recorder
        try:
            saved = p.stop()
        except Exception as exc:  # the recording failed; say so, keep going
            self.events.error(describe_error(exc))
            return None
        if saved is not None:
            self._say_saved(rec, saved)
        return saved

    def _say_saved(self, rec: Any, saved: Path) -> None:
        """ "Recording saved", and what the file lost (frames dropped or merged, signal gaps):
        a recording missing frames is a warning, never a plain success."""
        lost = rec.loss_text() if rec is not None else ""
        log.info("recording saved: %s%s", saved, f" ({lost})" if lost else "")
        if lost:
            self.events.error(f"Recording saved: {saved}; it lacks {lost}")
        else:
            self.events.message(f"Recording saved: {saved}", 10000)

    def _stop_recording(self, p: Player) -> Path | None:
        rec = p.recorder
        saved = self._attempt(p.stop_recording, "")
        if saved is not None:
            self._say_saved(rec, saved)
        return saved

    # -- models ----------------------------------------------------------------------------------
    def load_model(self, path: Path | None, provider: str | None = None) -> None:
        """Load ``path`` (None: the shipped default);
        the running model goes on until it is ready."""
        if provider is not None:
            self.provider = provider
        self.model_choice = Path(path) if path is not None else None
        self.events.model_loading(self.model_choice, self.provider)
        chosen, prov = self.model_choice, self.provider
        self._submit(
            "model",
            str(chosen or "default"),
            lambda: self._load(chosen, prov),
            lambda seg: self._model_loaded(seg, chosen is not None),
            self._model_failed,
        )

    def choose_provider(self, provider: str) -> None:
        self.load_model(self.model_choice, provider)

    def _model_failed(self, exc: BaseException) -> None:
        """Keep the running model; with none, say why in the view itself."""
        msg = describe_error(exc)
        self.events.error(msg)
        self.events.model_shown(self.segmenter, self.provider)
        if self.segmenter is None:
            self.no_model_text = (
                f"No model loaded\n\n{msg}\n\nChoose one with "
                "\u201cOther\u2026\u201d in the Model panel."
            )
            self.events.placeholder(self.no_model_text, clear=True)

    def _model_loaded(self, seg: Segmenter, remembered: bool) -> None:
        if self.closed:
            return
        self.segmenter = seg
        self.no_model_text = ""
        self.events.model_shown(seg, self.provider)
        overlay = self.events.model_loaded(seg, remembered)
        if overlay is not None:
            self.overlay = overlay
        self.events.message(f"Model {seg.contract.name} on {seg.report}", 6000)
        if self.pending is not None:
            self._start_pending()
        elif self.player is not None:
            self.player.swap_processor(self._processor(seg))
            self.player.refresh()

    # -- transport -------------------------------------------------------------------------------
    def toggle_play(self) -> None:
        if self.player is not None:
            self.player.toggle_pause()

    def step(self, delta: int) -> None:
        if self.player is not None and self.player.seekable:
            self.player.runner.step(delta)

    def seek(self, index: int) -> None:
        if self.player is not None and self.player.seekable:
            self.player.runner.seek(index)

    def next_detection(self) -> int | None:
        """Pause at the next frame with a polyp the timeline knows of; None when there is none."""
        p = self.player
        if p is None or p.track is None:
            return None
        nxt = p.track.next_polyp(p.runner.position)
        if nxt is None:
            self.events.message(
                "No later detection seen yet (the timeline fills as the clip plays)", 4000
            )
            return None
        p.runner.pause()
        p.runner.seek(nxt)
        return nxt

    def set_loop(self, on: bool) -> None:
        self.loop = on
        if self.player is not None:
            self.player.runner.loop = on

    def set_synchronous(self, on: bool) -> None:
        """Each frame with its own mask (review), or the video passed through (live use)."""
        self.synchronous = on
        if self.player is not None:
            self.player.runner.mode = "sync" if on else "pass-through"

    def ended(self) -> None:
        """The player reached the end of its clip (called on the window's thread)."""
        if self.player is not None and not self.player.runner.loop:
            self.events.message("End of clip; press Space to play again", 5000)

    # -- overlay -----------------------------------------------------------------------------------
    def apply_overlay(self, settings: OverlaySettings) -> None:
        """New overlay settings from the next frame on (the paused frame is redrawn)."""
        self.overlay = settings
        p = self.player
        if p is not None:
            p.apply(settings.stream_settings(p.processor.segmenter, p.processor.settings))
            p.refresh()

    # -- outputs -----------------------------------------------------------------------------------
    def out_path(self, suffix: str) -> Path:
        """A new name in the output folder, by wall clock (to the millisecond)."""
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"
        return self.output_dir() / f"polypvision-{stamp}{suffix}"

    def sweep_outputs(self) -> list[str]:
        """Recover what a killed session left in the output folder (a recording plays up to its
        last complete fragment) and remove the rest; one message per thing done."""
        from polypvision.partials import sweep

        done = sweep(self.output_dir())
        news = [m for m in done if m.startswith(("recovered", "restored"))]
        if news:
            self.events.recovered("; ".join(news))
        elif done:
            self.events.message("; ".join(done), 15000)
        return done

    def _attempt(self, fn: Callable[[], Any], done: str = "{}") -> Any:
        """Run a user command; a full disk or a bad folder is a message, not a crash."""
        try:
            value = fn()
        except Exception as exc:
            self.events.error(describe_error(exc))
            return None
        if done:
            self.events.message(done.format(value), 8000)
        return value

    def toggle_record(self) -> Path | None:
        """Start recording what plays into the output folder, or stop and save the recording."""
        p = self.player
        if p is None:
            self.events.error("nothing to record yet; open a source first")
            return None
        if p.recording:
            return self._stop_recording(p)
        self.sweep_outputs()
        return self._attempt(lambda: p.start_recording(self.out_path(".mp4")), "Recording to {}")

    def check_recording(self) -> None:
        """A recording whose writes fail (a full disk) stops at once, keeping what it holds."""
        p = self.player
        rec = p.recorder if p is not None else None
        if p is not None and rec is not None and rec.error is not None:
            self._stop_recording(p)

    def snapshot(self) -> Path | None:
        p = self.player
        if p is None:
            self.events.error("nothing to snapshot yet; open a source first")
            return None
        return self._attempt(lambda: p.snapshot(self.out_path(".png")), "Snapshot saved: {}")

    def export_source(self) -> tuple[str, Path] | None:
        """What File > Export exports (the source's spec) and its default output; None (and an
        error message) for a live source or nothing playing."""
        p = self.player
        if p is None or p.info.live:
            self.events.error(
                "export needs a video file or a folder of frames; live sources can be recorded (R)"
            )
            return None
        spec = str(p.source.path) if source_kind(p.spec) == "demo" else p.spec  # type: ignore[attr-defined]
        stem = Path(spec).stem if source_kind(spec) in ("file", "frames") else "clip"
        return spec, self.output_dir() / f"{stem}-annotated.mp4"

    def start_export(
        self,
        spec: str,
        plan: ExportPlan,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        on_exit: Callable[[], None] | None = None,
    ) -> ExportJob | None:
        """Export ``spec`` per ``plan`` with the playing model and settings
        (one export at a time)."""
        p = self.player
        if p is None:
            self.events.error("open a video file or a folder of frames first")
            return None
        if self.exporting:
            self.events.error("an export is already running; wait for it or cancel it")
            return None
        from polypvision.partials import sweep

        sweep(plan.video.parent)  # what a killed export left there
        self.export = ExportJob(
            spec, p.processor, plan, p.info.fps, on_progress=on_progress, on_exit=on_exit
        )
        return self.export.start()

    def toggle_scan(
        self,
        on_progress: Callable[[Progress], None],
        on_done: Callable[[BaseException | None], None],
    ) -> bool | None:
        """Start scanning the whole clip for the timeline (True) or stop the scan (False); None
        when it cannot run (a message says why). The callbacks come on the scan's worker."""
        p = self.player
        if p is None:
            self.events.error("open a video file or a folder of frames first")
            return None
        started = self._attempt(lambda: p.toggle_scan(on_progress, on_done), "")
        if started is not None:
            self.events.message(
                "Scanning the clip for detections\u2026" if started else "Scan stopped", 3000
            )
        return started

    def scan_finished(self, err: BaseException | None) -> None:
        """The scan's end (called on the window's thread)."""
        p = self.player
        if err is None and p is not None and p.track is not None:
            n = sum(b - a for a, b in p.track.runs())
            events = len(p.track.events())
            self.events.message(
                f"Scan complete: {events} polyp event{'s' if events != 1 else ''}, a polyp in "
                f"{n} of {len(p.track)} frames (N jumps to the next)",
                10000,
            )
        elif err is not None and not isinstance(err, Cancelled):
            self.events.error(f"scan failed: {describe_error(err)}")

    # -- the window's timer ------------------------------------------------------------------------
    def poll(self) -> None:
        """Periodic checks: a failed recording is stopped; a live source's signal lost or back."""
        p = self.player
        if p is None:
            return
        self.check_recording()
        if p.runner.error is not None:
            if not self._failed:
                self._source_failed(p, p.runner.error)
            return
        if p.info.live:
            self._live_status(p)

    def _source_failed(self, p: Player, exc: BaseException) -> None:
        """Said once: the video stopped; a recording in progress is finished (kept)."""
        self._failed = True
        if p.recording:
            self._stop_recording(p)
        self.events.source_failed(p.info.description, describe_error(exc))

    def reopen(self) -> None:
        """Open the last opened source again (after it failed, or to restart it)."""
        again = self._reopen
        if again is None:
            self.events.error("nothing to reopen yet; open a source first")
            return
        spec, source, kwargs = again
        self.stop_player()  # closes the failed source, finishing its recording
        self.open(spec, source, **kwargs)

    def _live_status(self, p: Player) -> None:
        state = p.runner.status()
        if state == self._live_state or (state in LOST and self._live_state in LOST):
            return
        was_lost, self._live_state = self._live_state in LOST, state
        if state in LOST:
            self.events.signal(True, p.info.description)
        elif state == "ok" and was_lost:  # the end of a pause is no "signal back"
            self.events.signal(False, p.info.description)

    # -- the end -----------------------------------------------------------------------------------
    def close(self) -> Path | None:
        """Stop every thread (cancelling an export, finishing a recording);
        returns the saved recording."""
        self.closed = True
        if self.export is not None:
            self.export.wait(EXPORT_WAIT_S)
        saved = self.stop_player()
        if self.pending is not None:
            self.pending[1].close()
            self.pending = None
        return saved
