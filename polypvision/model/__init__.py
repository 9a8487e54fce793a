"""The model: its contract (data inside the ONNX file), pre/postprocessing, and the session."""

from __future__ import annotations

from polypvision.model.contract import METADATA_KEY, InputSpec, ModelContract, OutputSpec

__all__ = ["METADATA_KEY", "InputSpec", "ModelContract", "OutputSpec"]
