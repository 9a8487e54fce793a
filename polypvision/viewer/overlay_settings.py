"""What the app's overlay panel edits and its settings file keeps, as one value (no Qt).

Its defaults are the core's (:mod:`polypvision.settings`, the one schema); the panel keeps
no setting of its own: :meth:`OverlaySettings.stream_settings` builds the schema's
:class:`~polypvision.settings.StreamSettings` a stream (and an export of it) runs with.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from polypvision.model.session import Segmenter
from polypvision.settings import HYSTERESIS_GAP, OverlayStyle, SmoothingConfig, StreamSettings

_CORE_STYLE = OverlayStyle()
DEFAULT_STRENGTH = 0.5  # the smoothing slider's position that means "the core's defaults"


@dataclass(frozen=True)
class OverlaySettings:
    """What the overlay panel edits (and the settings file keeps); its defaults are the core's."""

    enabled: bool = _CORE_STYLE.enabled
    fill: bool = _CORE_STYLE.fill
    contour: bool = _CORE_STYLE.contour
    box: bool = _CORE_STYLE.box
    color: tuple[int, int, int] = _CORE_STYLE.color  # BGR, like OverlayStyle
    opacity: float = _CORE_STYLE.opacity
    threshold: float | None = None  # None: the model's own
    smoothing: float = DEFAULT_STRENGTH  # 0 = off exactly; 0.5 = the core's defaults; 1 = strongest

    def style(self, base: OverlayStyle = _CORE_STYLE) -> OverlayStyle:
        return replace(
            base,
            enabled=self.enabled,
            fill=self.fill,
            contour=self.contour,
            box=self.box,
            color=self.color,
            opacity=self.opacity,
        )

    def smoothing_config(
        self, threshold: float, min_area: float = 0.0, min_peak: float = 0.0
    ) -> SmoothingConfig:
        """One strength knob for the core's parameters: 0 = off exactly, 0.5 = the core's defaults
        themselves (the model's threshold and gate ``min_area`` / ``min_peak``), 1 = twice as
        strong."""
        s = min(max(self.smoothing, 0.0), 1.0)
        if s == DEFAULT_STRENGTH:
            return SmoothingConfig()
        base = SmoothingConfig()
        k = 2.0 * s
        return SmoothingConfig(
            alpha=1.0 - (1.0 - base.alpha) * k,
            on=threshold,
            off=max(threshold - HYSTERESIS_GAP * k, 0.0),
            min_area=min(min_area * k, 0.5),
            min_peak=threshold + (min_peak - threshold) * min(k, 1.0)
            if min_peak > threshold
            else 0.0,
        )

    def stream_settings(
        self, segmenter: Segmenter, base: StreamSettings | None = None
    ) -> StreamSettings:
        """The one value a stream runs with: this panel's choices for ``segmenter``'s model."""
        base = base if base is not None else StreamSettings()
        out = segmenter.contract.output
        t = self.threshold if self.threshold is not None else out.threshold
        return replace(
            base,
            threshold=self.threshold,
            style=self.style(base.style),
            smoothing=self.smoothing_config(t, out.min_area, out.min_peak),
        )
