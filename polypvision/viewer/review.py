"""The player's stream state for a seekable clip: a reviewed frame shows the export's mask.

The temporal smoothing (an average of the probability maps, hysteresis, persistence) makes a
frame's mask depend on the frames before it. The export and the clip scan analyse every frame
from the first, so that is the mask a reviewer must see on a paused, stepped or sought frame.
The live runner forgets the smoothing at every seek and step (its ``reset()``); alone, that
showed each reviewed frame as if the clip began there: a mask neither playback nor the export
produced. The rule here, the simplest truthful one we found:

- a step forward from an unbroken run (every frame analysed in order since the last restart)
  goes on with the smoothing, as playback and the export do;
- any other jump (a seek, a step back, a pause in pass-through, where the model skipped frames,
  a redraw with new settings) restores the smoothing's state at the nearest earlier frame known
  exactly (analysed in an unbroken run from the clip's first frame, with the same thresholds)
  and replays the frames from there to the target through the model; with no such state within
  :data:`MAX_REPLAY` frames, the replay starts at the clip's first frame when the target is that
  close to it, and else as far back as the average and the persistence window remember
  (:func:`memory_frames`). Only in that last case can the mask differ from the export's, in
  pixels the hysteresis holds between its two thresholds for longer than the replay (a few
  border pixels); the next jump near it is exact again.

Runs on the live runner's inference thread (a processor is used by one thread at a time); the
replayed frames come from a second reader of the same clip, so the playing one never moves.
"""

from __future__ import annotations

import copy
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from polypvision.model.session import Segmenter
from polypvision.pipeline.processor import FrameProcessor, StreamSettings
from polypvision.smoothing import _Buffers
from polypvision.types import Frame, FrameResult

__all__ = ["MAX_REPLAY", "ReviewProcessor", "memory_frames"]

log = logging.getLogger(__name__)

# Residual weight of the average's starting point below which it cannot change a float32 value.
EMA_RESIDUAL = 2.0**-30
MAX_REPLAY = 100  # frames replayed at most for one jump (about 4 s of a 25 fps clip)
# Exact states kept: one per frame for the frames analysed last (a step back replays nothing),
# and one every SPARSE_EVERY frames (a seek back replays fewer than that). A state is the
# average and the mask at model size (320 kB for a 256 x 256 model): 40 MB at most.
DENSE_STATES = 24
SPARSE_EVERY, MAX_SPARSE = 50, 100

FrameReader = Callable[[int, int], Sequence[Frame]]  # (start, stop) -> frames start..stop-1


def memory_frames(alpha: float, window: int, limit: int = MAX_REPLAY) -> int:
    """How many frames before a target the smoothing's state depends on, for a replay."""
    ema = 0 if alpha >= 1.0 else math.ceil(math.log(EMA_RESIDUAL) / math.log(1.0 - alpha))
    return min(limit, max(ema, window - 1, 0))


class ReviewProcessor(FrameProcessor):
    """A :class:`FrameProcessor` whose ``reset()`` (a seek or a step) keeps the export's
    smoothing state for the frame that comes next (see the module's doc)."""

    def __init__(
        self,
        segmenter: Segmenter,
        *,
        settings: StreamSettings,
        frames: FrameReader | None,
        limit: int = MAX_REPLAY,
    ) -> None:
        super().__init__(segmenter, settings=settings)
        self.frames, self.limit = frames, limit
        self._next = 0  # the frame whose analysis continues the unbroken run
        self._unbroken = True  # every frame analysed in order since the last restart
        self._exact = True  # ... and the state is the export's after frame _next - 1
        self._rewind = False  # a reset came: decide at the next frame
        self._dense: OrderedDict[int, Any] = OrderedDict()  # exact states after frame i
        self._sparse: dict[int, Any] = {}
        self._states_for: Any = None  # the thresholds and smoothing the states were made with
        self.replayed = 0  # frames replayed so far (for tests and the log)

    @classmethod
    def of(cls, processor: FrameProcessor, frames: FrameReader | None) -> ReviewProcessor:
        """``processor``'s model and settings, its state fresh (a new player or a new model)."""
        if isinstance(processor, ReviewProcessor):
            return processor
        return cls(processor.segmenter, settings=processor.settings, frames=frames)

    def reset(self) -> None:
        self._rewind = True

    def infer_full(self, frames: Sequence[Frame]) -> tuple[np.ndarray, np.ndarray | None]:
        # Before the target's own inference: a replay reuses the preprocessing buffers.
        if self._rewind and frames:
            self._rewind = False
            target = frames[0].index
            if not (self._unbroken and target == self._next):
                self._replay(target)
        return super().infer_full(frames)

    def analyse(
        self,
        frame: Frame,
        prob_small: np.ndarray,
        settings: StreamSettings | None = None,
        t_inferred: float = 0.0,
        t_started: float = 0.0,
        presence: float | None = None,
    ) -> FrameResult:
        if frame.index != self._next:  # the model skipped frames (pass-through keeps the pace)
            self._unbroken = self._exact = False
        s = settings if settings is not None else self.settings
        if (s.threshold_for(self.segmenter), s.smoothing) != self._tuned_for:
            self._exact = False  # the history was smoothed under other settings than what follows
        result = super().analyse(frame, prob_small, settings, t_inferred, t_started, presence)
        self._next = frame.index + 1
        if self._exact:
            self._keep(frame.index)
        return result

    # -- the states known exactly ------------------------------------------------------------------
    def _current_states(self) -> None:
        """Forget the states when the thresholds or the smoothing changed (the export with the
        new settings has other masks)."""
        if self._states_for != self._tuned_for:
            self._dense.clear()
            self._sparse.clear()
            self._states_for = self._tuned_for

    def _keep(self, index: int) -> None:
        self._current_states()
        buf = self.smoother._buf
        if buf is None:
            return
        state = (buf.ema.copy(), buf.mask.copy(), copy.deepcopy(self.persistence))
        self._dense[index] = state
        self._dense.move_to_end(index)
        while len(self._dense) > DENSE_STATES:
            self._dense.popitem(last=False)
        if index % SPARSE_EVERY == 0 and len(self._sparse) < MAX_SPARSE:
            self._sparse[index] = state

    def _restore(self, target: int) -> int | None:
        """Restore the exact state of the nearest frame before ``target`` within reach of a
        replay; the frame it is the state after, or None."""
        self._tune(self.settings)
        self._current_states()
        near = [i for i in (*self._dense, *self._sparse) if target - self.limit <= i < target]
        if not near:
            return None
        best = max(near)
        ema, mask, persistence = self._dense.get(best) or self._sparse[best]
        buf = _Buffers.of(ema.shape)
        np.copyto(buf.ema, ema)
        np.copyto(buf.mask, mask)
        self.smoother._buf = buf
        self.persistence = copy.deepcopy(persistence)
        return best

    def _replay(self, target: int) -> None:
        """Bring the smoothing to where the export has it before ``target`` (module's doc)."""
        self._tune(self.settings)  # the settings the replay and the target are analysed with
        if self.frames is None:  # nothing to replay from: only restart (the old behaviour)
            FrameProcessor.reset(self)
            self._next, self._exact, self._unbroken = target, target == 0, True
            return
        known = self._restore(target)
        if known is not None:
            start, exact = known + 1, True
        else:
            FrameProcessor.reset(self)
            memory = memory_frames(self.smoothing.alpha, self.decision.window, self.limit)
            start = 0 if target <= self.limit else target - memory
            exact = start == 0
        self._next, self._exact, self._unbroken = start, exact, True
        if start == target:
            return
        try:
            frames = self.frames(start, target)
        except Exception as exc:  # a second reader that cannot open: say so, show what we can
            log.warning("cannot replay frames %d-%d for the smoothing: %s", start, target, exc)
            self._next, self._exact = target, False
            return
        s = self.settings
        for f in frames:
            probs, presence = super().infer_full([f])
            self.analyse(f, probs[0], s, presence=None if presence is None else float(presence[0]))
        self.replayed += len(frames)
        if self._next != target:  # the reader fell short (a damaged stretch)
            self._next, self._exact = target, False
