"""Which ONNX runtime is installed, importing it, and what to install when there is none.

PolypVision needs exactly one onnxruntime distribution: ``onnxruntime`` (CPU, every platform;
``pip install 'polypvision[cpu]'``) or ``onnxruntime-gpu`` (CPU and CUDA;
``pip install 'polypvision[gpu]'``, which also brings the CUDA and cuDNN libraries as NVIDIA's
wheels). Both install the same ``onnxruntime`` module, so two of them in one environment
overwrite each other's files.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import logging

from polypvision.errors import UserError, cause_line

log = logging.getLogger(__name__)

#: Distributions that provide the ``onnxruntime`` module (the first two are the extras' choice).
RUNTIME_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-qnn",
)
INSTALL_HINT = (
    "pip install 'polypvision[cpu]' (or 'polypvision[gpu]' on a machine with an NVIDIA GPU; "
    "never both)"
)
_preloaded = False
_warned = False


class RuntimeMissing(UserError):
    """No usable onnxruntime in this environment."""


def installed_runtimes() -> list[tuple[str, str]]:
    """(distribution, version) of every onnxruntime distribution installed here."""
    found = []
    for name in RUNTIME_DISTRIBUTIONS:
        try:
            found.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def conflict() -> str | None:
    """One line when more than one onnxruntime distribution is installed, else None."""
    found = installed_runtimes()
    if len(found) < 2:
        return None
    names = " and ".join(n for n, _ in found)
    return (
        f"{names} are both installed and overwrite each other's files; "
        f"pip uninstall -y {' '.join(n for n, _ in found)}, then {INSTALL_HINT}"
    )


def import_onnxruntime():
    """The ``onnxruntime`` module, or a one-line :class:`RuntimeMissing` saying what to install."""
    global _warned
    try:
        import onnxruntime as ort
    except ImportError as exc:
        if exc.name == "onnxruntime" or not installed_runtimes():
            raise RuntimeMissing(f"no ONNX runtime is installed; {INSTALL_HINT}") from None
        raise RuntimeMissing(
            f"onnxruntime is installed but does not import ({cause_line(exc)}); "
            f"reinstall it: {INSTALL_HINT}"
        ) from None
    if not hasattr(
        ort, "InferenceSession"
    ):  # files left behind by uninstalling one of two runtimes
        raise RuntimeMissing(
            f"the onnxruntime module is incomplete ({conflict() or 'a partial install'}); "
            f"pip uninstall -y onnxruntime onnxruntime-gpu, then {INSTALL_HINT}"
        )
    if not _warned:
        _warned = True
        why = conflict()
        if why:
            log.warning("%s", why)
    return ort


def runtime_package() -> tuple[str, str] | None:
    """The onnxruntime distribution in use: (name, version); None when none is installed."""
    found = installed_runtimes()
    if not found:
        return None
    try:
        import onnxruntime as ort
    except ImportError:
        return found[0]
    wants_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    for name, version in found:  # the one whose build matches the module that imports
        if (name == "onnxruntime-gpu") == wants_cuda and version == getattr(
            ort, "__version__", version
        ):
            return name, version
    return found[0]


def preload_cuda_libraries(ort) -> None:
    """Load the CUDA and cuDNN libraries of NVIDIA's pip wheels, when present,
    before a CUDA session.

    ``onnxruntime-gpu[cuda,cudnn]`` installs them under ``site-packages/nvidia``, where the CUDA
    provider finds them only after ``onnxruntime.preload_dlls()``. Its complaints go to stdout:
    they are swallowed here, and a failure shows up as the provider not starting, with the reason.
    """
    global _preloaded
    if _preloaded or not hasattr(ort, "preload_dlls"):
        return
    _preloaded = True
    try:
        if importlib.util.find_spec("nvidia") is None:
            return
    except (ImportError, ValueError):
        return
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            ort.preload_dlls()
        except Exception as exc:  # any failure: the session falls back to the CPU and says why
            log.debug("preload_dlls failed: %s", exc)
