"""Every setting a user can give, as one schema of frozen values with their defaults.

``annotate``'s and ``batch``'s arguments, the batch's workers and the app's panels used to keep
their own copies of these defaults (and a batch faked an argparse namespace to reach the
command's parser of them); they now only *build* these values:

- :class:`OverlayStyle`: what is drawn (fill, contour, box, colour, opacity, HUD);
- :class:`SmoothingConfig`: the temporal smoothing and the model's gate;
- :class:`StreamSettings`: one stream's output (threshold, smoothing, style, blackout);
- :class:`ExportSettings`: how an export reads and writes (model batch, folder frame rate,
  encoder, field-of-view blackout, strictness);
- :class:`EventSettings`: what counts as one polyp event (defined in :mod:`polypvision.events`,
  where the counting lives, and re-exported here).

The text forms the command line accepts (``--style fill,contour``, ``--color '#00ff00'``) are
parsed by :func:`overlay_style` and :func:`stream_settings`, so every door refuses a bad value
with the same words. Plain values, no Qt, no argparse: they are pickled to batch workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from polypvision.events import EventSettings

if TYPE_CHECKING:
    from polypvision.fov import Blackout
    from polypvision.model.session import Segmenter

__all__ = [
    "ENCODER_PRESETS",
    "HYSTERESIS_GAP",
    "STYLES",
    "EventSettings",
    "ExportSettings",
    "OverlayStyle",
    "SmoothingConfig",
    "StreamSettings",
    "overlay_style",
    "parse_color",
    "stream_settings",
    "style_names",
]

# -- smoothing ------------------------------------------------------------------------------------
# Chosen by scripts/tune_smoothing.py on the validation sequences: the alpha and hysteresis gap
# that cut the flicker the model adds on a steady scene most at no cost in Dice (the figures are
# in docs/smoothing.md).
HYSTERESIS_GAP = 0.2


@dataclass(frozen=True)
class SmoothingConfig:
    """The temporal smoothing (:mod:`polypvision.smoothing`); None fields follow the model."""

    alpha: float = 0.8
    on: float | None = None  # None: the model's threshold
    off: float | None = None  # None: on - HYSTERESIS_GAP
    min_area: float | None = None  # None: the model's (contract output.min_area, else 0)
    min_peak: float | None = None  # None: the model's (contract output.min_peak, else no gate)

    def validated(self) -> SmoothingConfig:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"smoothing alpha must lie in (0, 1], got {self.alpha}")
        if self.min_area is not None and not 0 <= self.min_area < 1:
            raise ValueError(f"min area must lie in [0, 1), got {self.min_area}")
        if self.min_peak is not None and not 0 <= self.min_peak < 1:
            raise ValueError(f"min peak must lie in [0, 1), got {self.min_peak}")
        return self


# -- overlay --------------------------------------------------------------------------------------
STYLES = ("fill", "contour", "box")


@dataclass(frozen=True)
class OverlayStyle:
    """What :mod:`polypvision.overlay` draws. Colours are BGR, as OpenCV draws them."""

    enabled: bool = True
    fill: bool = True
    contour: bool = True
    box: bool = False
    color: tuple[int, int, int] = (0, 255, 0)  # BGR
    opacity: float = 0.35
    thickness: int = 2
    hud: bool = False

    @classmethod
    def from_names(cls, names: Sequence[str], **kw) -> OverlayStyle:
        bad = [n for n in names if n not in STYLES]
        if bad:
            raise ValueError(f"unknown overlay style {bad[0]!r}; use any of {', '.join(STYLES)}")
        return cls(fill="fill" in names, contour="contour" in names, box="box" in names, **kw)


def parse_color(text: str) -> tuple[int, int, int]:
    """'#00ff00' or '0,255,0' (RGB, as people write colours) -> BGR tuple."""
    t = text.strip()
    try:
        if t.startswith("#") and len(t) == 7:
            r, g, b = (int(t[i : i + 2], 16) for i in (1, 3, 5))
        else:
            r, g, b = (int(v) for v in t.split(","))
    except ValueError:
        raise ValueError(f"colour {text!r} is not '#rrggbb' or 'r,g,b'") from None
    if not all(0 <= v <= 255 for v in (r, g, b)):
        raise ValueError(f"colour {text!r} has a component outside 0..255")
    return (b, g, r)


def style_names(style: OverlayStyle) -> str:
    """An overlay style as ``annotate --style`` spells it (``fill,contour``; ``none``)."""
    names = [n for n in STYLES if getattr(style, n)]
    return ",".join(names) if style.enabled and names else "none"


def overlay_style(
    style: str = "fill,contour", color: str = "#00ff00", opacity: float = 0.35, hud: bool = False
) -> OverlayStyle:
    """The style the command line's text forms name; ValueError says what is wrong."""
    names = [s.strip() for s in style.split(",") if s.strip()]
    if not names:
        raise ValueError(
            f"--style {style!r} names no overlay; give any of fill, contour, box "
            "(or 'none' to draw nothing)"
        )
    out = OverlayStyle.from_names(
        [] if names == ["none"] else names,
        color=parse_color(color),
        opacity=float(opacity),
        hud=bool(hud),
    )
    if not 0.0 <= out.opacity <= 1.0:
        raise ValueError(f"opacity must lie in 0..1, got {out.opacity}")
    return out


# -- one stream -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StreamSettings:
    """Everything a user can change about one stream's output, as one value.

    The defaults are the core's: the model's own threshold and gate, the tuned smoothing, the
    default overlay style. The desktop app starts from exactly this value.
    """

    threshold: float | None = None  # None: the model's own
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    style: OverlayStyle = field(default_factory=OverlayStyle)
    blackout: Blackout | None = None  # the field of view found in this stream (not a choice)

    def threshold_for(self, segmenter: Segmenter) -> float:
        return self.threshold if self.threshold is not None else segmenter.contract.output.threshold


def stream_settings(
    *,
    threshold: float | None = None,
    smooth_alpha: float | None = None,
    min_area: float | None = None,
    style: str = "fill,contour",
    color: str = "#00ff00",
    opacity: float = 0.35,
    hud: bool = False,
) -> StreamSettings:
    """A stream's settings from the command line's options (None: the default); ValueError
    says which value is wrong."""
    base = SmoothingConfig()
    smoothing = SmoothingConfig(
        alpha=smooth_alpha if smooth_alpha is not None else base.alpha,
        min_area=min_area if min_area is not None else base.min_area,
    ).validated()
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
    return StreamSettings(threshold, smoothing, overlay_style(style, color, opacity, hud))


# -- export ---------------------------------------------------------------------------------------
ENCODER_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")


@dataclass(frozen=True)
class ExportSettings:
    """How an export reads its input and writes its video; the same for every export path."""

    batch: int = 4  # frames per model call
    fps: float = 25.0  # the frame rate of a folder of frames (a video has its own)
    encoder_preset: str = "veryfast"  # x264's speed/size trade-off
    crf: int = 20  # x264's constant quality
    blackout: bool = False  # find the endoscope's field of view and black out the rest
    strict: bool = False  # publish nothing when a frame the input announced cannot be decoded

    def validated(self) -> ExportSettings:
        if self.encoder_preset not in ENCODER_PRESETS:
            raise ValueError(
                f"encoder preset {self.encoder_preset!r} is not one of {', '.join(ENCODER_PRESETS)}"
            )
        if not self.fps > 0:
            raise ValueError(f"frame rate must be above 0, got {self.fps}")
        return self
