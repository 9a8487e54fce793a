"""The model contract: everything the runtime must know about a model, stored in the model.

An ONNX file carries, in its metadata under the key ``polypvision``, a JSON document
(schema 1) naming the input tensor, its size, layout, colour order and scaling, and how
to read the output. Export writes it; loading reads and validates it. Nothing about a
model's geometry or scaling is written anywhere else in the code, so a new model needs
no code change.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from polypvision.decision import DecisionSpec
from polypvision.errors import ContractError

METADATA_KEY = "polypvision"
SCHEMA_VERSION = 1

LAYOUTS = ("NHWC", "NCHW")
COLORS = ("RGB", "BGR")
RESIZES = ("bilinear", "area")
OUTPUT_KINDS = ("probability", "logit")


def _require(doc: dict[str, Any], key: str, where: str) -> Any:
    if key not in doc:
        raise ContractError(
            f"model contract: '{where}{key}' is missing; re-export the model with 'polypvision "
            "export'"
        )
    return doc[key]


def _choice(value: Any, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise ContractError(
            f"model contract: '{where}' is {value!r}, expected one of {', '.join(allowed)}"
        )
    return str(value)


def _triple(value: Any, where: str) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise ContractError(
            f"model contract: '{where}' must be three finite numbers, got {value!r}"
        )
    return out[0], out[1], out[2]


def _positive_int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ContractError(f"model contract: '{where}' must be a positive integer, got {value!r}")
    return value


@dataclass(frozen=True)
class InputSpec:
    """How a BGR uint8 frame becomes the model's input tensor."""

    name: str
    layout: str
    height: int
    width: int
    color: str
    resize: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> InputSpec:
        w = "input."
        std = _triple(_require(doc, "std", w), w + "std")
        if any(s == 0 for s in std):
            raise ContractError("model contract: 'input.std' must not contain 0")
        scale = float(_require(doc, "scale", w))
        if not math.isfinite(scale) or scale == 0:
            raise ContractError(
                f"model contract: 'input.scale' must be a non-zero number, got {scale!r}"
            )
        return cls(
            name=str(_require(doc, "name", w)),
            layout=_choice(_require(doc, "layout", w), LAYOUTS, w + "layout"),
            height=_positive_int(_require(doc, "height", w), w + "height"),
            width=_positive_int(_require(doc, "width", w), w + "width"),
            color=_choice(_require(doc, "color", w), COLORS, w + "color"),
            resize=_choice(_require(doc, "resize", w), RESIZES, w + "resize"),
            scale=scale,
            mean=_triple(_require(doc, "mean", w), w + "mean"),
            std=std,
        )


@dataclass(frozen=True)
class OutputSpec:
    """How to read the output tensor: probabilities or logits, the pixel threshold, and the
    frame-level gate (a region counts only if it covers ``min_area`` of the frame and its
    probability reaches ``min_peak``; both chosen on validation sequences, 0 = no gate).

    ``presence``: the graph's frame-level output (probability of a polyp anywhere in the frame,
    shape (N, 1)), if the model has one. ``decision``: when the app reports a polyp on a frame
    (:mod:`polypvision.decision`), chosen on validation at export."""

    name: str
    kind: str
    threshold: float
    min_area: float = 0.0
    min_peak: float = 0.0
    presence: str | None = None
    decision: DecisionSpec = field(default_factory=DecisionSpec)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> OutputSpec:
        w = "output."
        threshold = float(_require(doc, "threshold", w))
        if not 0.0 < threshold < 1.0:
            raise ContractError(
                f"model contract: 'output.threshold' must lie in (0, 1), got {threshold}"
            )
        gate = {}
        for key in ("min_area", "min_peak"):
            try:
                v = float(doc.get(key, 0.0))
            except (TypeError, ValueError):
                v = math.nan
            if not 0.0 <= v < 1.0:
                raise ContractError(
                    f"model contract: 'output.{key}' must lie in [0, 1), got {doc.get(key)!r}"
                )
            gate[key] = v
        presence = doc.get("presence")
        decision = DecisionSpec.from_dict(doc.get("decision"))
        if decision.score != "peak" and not presence:
            raise ContractError(
                f"model contract: 'output.decision.score' is {decision.score!r} but the model "
                "names no 'output.presence' tensor; re-export the model"
            )
        return cls(
            name=str(_require(doc, "name", w)),
            kind=_choice(_require(doc, "kind", w), OUTPUT_KINDS, w + "kind"),
            threshold=threshold,
            presence=None if presence is None else str(presence),
            decision=decision,
            **gate,
        )


@dataclass(frozen=True)
class ModelContract:
    """Schema 1 of the ``polypvision`` metadata document."""

    name: str
    architecture: str
    base_filters: int | None
    input: InputSpec
    output: OutputSpec
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, doc: Any) -> ModelContract:
        if not isinstance(doc, dict):
            raise ContractError("model contract: the 'polypvision' metadata is not a JSON object")
        schema = _require(doc, "schema", "")
        if schema != SCHEMA_VERSION:
            raise ContractError(
                f"model contract: schema {schema!r} is not supported (this version reads schema "
                f"{SCHEMA_VERSION}); upgrade polypvision or re-export the model"
            )
        base = doc.get("base_filters")
        inp, out = _require(doc, "input", ""), _require(doc, "output", "")
        if not isinstance(inp, dict) or not isinstance(out, dict):
            raise ContractError("model contract: 'input' and 'output' must be JSON objects")
        return cls(
            schema=SCHEMA_VERSION,
            name=str(_require(doc, "name", "")),
            architecture=str(_require(doc, "architecture", "")),
            base_filters=None if base is None else int(base),
            input=InputSpec.from_dict(inp),
            output=OutputSpec.from_dict(out),
            training=dict(doc.get("training") or {}),
            metrics=dict(doc.get("metrics") or {}),
        )

    @classmethod
    def from_json(cls, text: str) -> ModelContract:
        try:
            doc = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ContractError(
                f"model contract: the 'polypvision' metadata is not valid JSON ({exc})"
            ) from None
        return cls.from_dict(doc)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["input"]["mean"] = list(self.input.mean)
        doc["input"]["std"] = list(self.input.std)
        doc["output"]["decision"] = self.output.decision.to_dict()
        if doc["output"]["presence"] is None:
            del doc["output"]["presence"]
        order = [
            "schema",
            "name",
            "architecture",
            "base_filters",
            "input",
            "output",
            "training",
            "metrics",
        ]
        return {k: doc[k] for k in order}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)
