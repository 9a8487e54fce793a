"""Static int8 quantization of a shipped model with onnxruntime's quantization tools.

Calibrates on training-split frames (never test frames) fed through the app's own
preprocessing, writes ``<model>.int8.onnx`` with the contract carried over (name and
provenance updated), then evaluates both models on the test split with the project's own
evaluation and prints the Dice drop. The rule (issue "Speed"): ship the int8 model only if
test mean Dice drops by <= 0.01; this script says which, it does not decide for you.

    python scripts/quantize.py models/M.onnx --data ../shared/data/CVC-ClinicDB
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from polypvision.data import discover, load_or_create_split, read_image, select
from polypvision.model.contract import METADATA_KEY, ModelContract
from polypvision.model.processing import Preprocessor
from polypvision.model.session import Segmenter


class _Reader(CalibrationDataReader):
    def __init__(self, images: list[np.ndarray], seg: Segmenter) -> None:
        self.pre = Preprocessor(seg.contract.input, 1)
        self.name = seg.contract.input.name
        self.it = iter(images)

    def get_next(self):
        img = next(self.it, None)
        return None if img is None else {self.name: self.pre([img]).copy()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("model", type=Path)
    ap.add_argument(
        "--data",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared/data/CVC-ClinicDB",
    )
    ap.add_argument(
        "--calibration", type=int, default=64, help="training frames used for calibration"
    )
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args(argv)
    out = args.output or args.model.with_name(args.model.stem + ".int8.onnx")
    seg = Segmenter(args.model, "cpu")
    ds = discover(args.data)
    split = load_or_create_split(ds, create=False)
    train = select(ds, split, "train")
    step = max(1, len(train) // args.calibration)
    images = [read_image(s.image) for s in train[::step][: args.calibration]]
    tmp = out.with_suffix(".tmp.onnx")
    quantize_static(
        str(args.model),
        str(tmp),
        _Reader(images, seg),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    proto = onnx.load(str(tmp))
    doc = seg.contract.to_dict()
    doc["name"] = seg.contract.name + "-int8"
    doc["training"] = {
        **doc["training"],
        "quantization": {
            "tool": "onnxruntime.quantization.quantize_static",
            "format": "QDQ",
            "per_channel": True,
            "calibration": f"{len(images)} frames of the train split",
            "source_model": args.model.name,
        },
    }
    doc["metrics"] = {}
    del proto.metadata_props[:]
    onnx.helper.set_model_props(
        proto, {METADATA_KEY: json.dumps(ModelContract.from_dict(doc).to_dict())}
    )
    onnx.save(proto, str(out))
    tmp.unlink(missing_ok=True)
    print(
        f"wrote {out}; now compare with:\n  polypvision evaluate --model {args.model} --data "
        f"{args.data} --split test\n  polypvision evaluate --model {out} --data {args.data} "
        "--split test"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
