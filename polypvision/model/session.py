"""Loading a model and running it with onnxruntime.

Provider choice: ``auto`` tries CUDA and falls back to the CPU; ``cuda`` insists on it;
``cpu`` never tries it. onnxruntime-gpu lists the CUDA provider as *available* on machines
with no GPU, then prints a long error and silently runs on the CPU, so the provider that
really runs is read back from the session and reported in one line, with the reason.

A :class:`Segmenter` is immutable once loaded and safe to share between threads: the live
view, an export and a clip scan run one session at once. Everything that belongs to one
stream (preprocessing buffers, smoother, overlay settings) lives in that stream's
:class:`~polypvision.pipeline.processor.FrameProcessor`, never here.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np

from polypvision.errors import ContractError, UserError, cause_line
from polypvision.model.contract import METADATA_KEY, ModelContract
from polypvision.model.processing import Preprocessor, resize_to, to_probabilities

log = logging.getLogger(__name__)

PROVIDERS = ("auto", "cuda", "cpu")
_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"
ORT_DEFAULT_SEVERITY = 2  # onnxruntime's own default (warnings and worse)
_ort_severity = ORT_DEFAULT_SEVERITY


def set_ort_log_severity(level: int) -> None:
    """Set onnxruntime's process-wide log level, remembered so a model load can restore it.

    onnxruntime has no getter for this level; every change made by PolypVision goes through
    here, so the quiet CUDA probe during a load puts back exactly what was set before.
    """
    global _ort_severity
    _ort_severity = int(level)
    _ort().set_default_logger_severity(_ort_severity)


@dataclass(frozen=True)
class ProviderReport:
    """Which execution provider runs, and why (one line for the UI and the log)."""

    name: str  # "CUDA" or "CPU"
    reason: str
    # True when the CPU is simply what this machine has (no NVIDIA driver, a CPU-only build
    # under 'auto'): said once, plainly, not shown as a warning.
    expected: bool = False

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def _ort():
    """onnxruntime, imported here so that `--help` stays fast
    (one line saying what to install if absent)."""
    from polypvision.model.runtime import import_onnxruntime

    return import_onnxruntime()


def _cuda_unavailable_reason(ort) -> str | None:
    if _CUDA not in ort.get_available_providers():
        return "the installed onnxruntime is a build without CUDA; polypvision[gpu] has it"
    if ctypes.util.find_library("cuda") is None and not os.path.exists(
        "/proc/driver/nvidia/version"
    ):
        return "no NVIDIA driver found"
    return None


@contextlib.contextmanager
def _stderr_captured() -> Iterator[Callable[[], str]]:
    """File descriptor 2 into a temporary file for the block (onnxruntime logs from C++, past
    Python's ``sys.stderr``); yields a getter of what was written. Lines that are not
    onnxruntime's are put back on the console afterwards, so nothing else is lost."""
    sys.stderr.flush()
    saved = os.dup(2)
    text = ""
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lambda: text
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
    others = [ln for ln in text.splitlines(keepends=True) if ":onnxruntime:" not in ln]
    if others:
        os.write(2, "".join(others).encode())
    if text:
        log.debug("onnxruntime said while starting CUDA:\n%s", text.rstrip())


_ORT_CAUSE = re.compile(r"(?:\bFAIL|EP_FAIL|RUNTIME_EXCEPTION|NOT_IMPLEMENTED)\s*:\s*(.+)$")


def _ort_error(text: str) -> str | None:
    """The cause in onnxruntime's last error line (``[E:onnxruntime...] ... FAIL : cause``)."""
    errors = [ln for ln in text.splitlines() if "[E:onnxruntime" in ln]
    if not errors:
        return None
    line = errors[-1]
    m = _ORT_CAUSE.search(line)
    cause = m.group(1) if m else line.rsplit("] ", 1)[-1]
    return cause_line(cause) or None


def _graph_dims(value_info) -> list[int | str | None]:
    return list(value_info.shape)


class LiveOptions(TypedDict):
    threads: int | None
    spinning: bool


def live_options(cores: int | None = None) -> LiveOptions:
    """Session options for the live view: the video must never wait for the model.

    The video path (grabbing, drawing at display size, painting) needs a core of its own on a
    small machine, and onnxruntime's worker threads busy-wait between operators by default,
    which takes that core from the video while the model runs. So the live view leaves one
    core to the video (on machines with four cores or fewer) and never spins.
    """
    cores = cores or os.cpu_count() or 2
    return {"threads": max(1, cores - 1) if cores <= 4 else None, "spinning": False}


class Segmenter:
    """An ONNX segmentation model with its contract, ready to run on BGR frames."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        provider: str = "auto",
        threads: int | None = None,
        max_batch: int = 8,
        *,
        requested: str | None = None,
        spinning: bool = True,
    ) -> None:
        """``requested``: what the user chose, when it differs from ``provider`` (the app falls
        back from an explicit ``cuda`` to ``auto``); the provider line then names the choice.
        ``threads`` / ``spinning``: onnxruntime's intra-op threads and whether they busy-wait
        between operators (see :func:`live_options` for the live view's choice)."""
        if provider not in PROVIDERS:
            raise UserError(f"unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}")
        self.path = Path(path)
        self._check_file()
        ort = _ort()
        self.max_batch = max(1, int(max_batch))  # a hint for each stream's preprocessing buffers
        self.session, self.report = self._create(
            ort, provider, threads, spinning, requested or provider
        )
        self.contract = self._read_contract()
        self._check_graph()
        self._input_name = self.contract.input.name
        out = self.contract.output
        self._outputs = [out.name] + ([out.presence] if out.presence else [])
        self.fixed_batch = self._batch_dim()
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = 4  # failures are raised as one line, not logged too
        self._frozen = True

    def __setattr__(self, name: str, value: object) -> None:
        # Shared by the live view, exports and scans on several threads: nothing may change
        # after loading, so per-stream state cannot creep back in here.
        if getattr(self, "_frozen", False):
            raise AttributeError(
                f"Segmenter is immutable once loaded (tried to set {name!r}); "
                "per-stream state belongs in a FrameProcessor"
            )
        super().__setattr__(name, value)

    # -- loading ----------------------------------------------------------------------------
    def _check_file(self) -> None:
        p = self.path
        if not p.exists():
            raise ContractError(
                f"model file not found: {p}; pass --model with the path of an .onnx file"
            )
        if not p.is_file():
            raise ContractError(
                f"model path is not a file: {p}; pass --model with the path of an .onnx file"
            )
        if p.stat().st_size == 0:
            raise ContractError(f"model file is empty: {p}; re-export or re-download it")

    def _options(self, ort, threads: int | None, spinning: bool):
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = int(threads)
        if not spinning:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return so

    def _create(self, ort, provider: str, threads: int | None, spinning: bool, requested: str):
        so = self._options(ort, threads, spinning)
        if provider in ("auto", "cuda"):
            why_not = _cuda_unavailable_reason(ort)
            no_gpu = why_not is not None  # nothing to fall back from: this machine has no GPU
            if why_not is None:
                from polypvision.model.runtime import preload_cuda_libraries

                preload_cuda_libraries(ort)
                sess, why_not = self._probe_cuda(ort, so)
                if sess is not None:
                    return sess, ProviderReport("CUDA", "CUDA execution provider is running")
            if provider == "cuda":
                raise UserError(
                    f"CUDA was requested but cannot run: {why_not}; use --provider cpu or auto"
                )
            sess = self._try_session(ort, so, [_CPU])
            if no_gpu and requested == "auto":
                return sess, ProviderReport(
                    "CPU", f"CUDA not available on this machine: {why_not}", expected=True
                )
            who = "by 'auto'" if requested == "auto" else f"explicitly ('{requested}')"
            return sess, ProviderReport("CPU", f"CUDA requested {who} but not usable: {why_not}")
        return self._try_session(ort, so, [_CPU]), ProviderReport("CPU", "CPU requested")

    def _probe_cuda(self, ort, so):
        """A CUDA session, or None and onnxruntime's own reason why not.

        onnxruntime either raises, or logs the provider's failure and quietly runs on the CPU.
        Its log is taken off the console for the probe (a CPU machine expects the failure) and
        read: the reason is the cause in its last error line, not a guess.
        """
        ort.set_default_logger_severity(min(_ort_severity, 3))  # errors say why CUDA failed
        try:
            with _stderr_captured() as said:
                sess = ort.InferenceSession(
                    str(self.path), sess_options=so, providers=[_CUDA, _CPU]
                )
        except Exception as exc:  # onnxruntime raises its own exception types per failure
            return None, f"onnxruntime could not start CUDA: {cause_line(exc)}"
        finally:
            ort.set_default_logger_severity(_ort_severity)
        if sess.get_providers()[0] == _CUDA:
            return sess, None
        why = _ort_error(said())
        if why is None:
            return None, (
                "onnxruntime started the session on the CPU without saying why (run with -v)"
            )
        hint = (
            "; pip install 'polypvision[gpu]' brings the CUDA / cuDNN libraries"
            if "shared object" in why or "Failed to load library" in why
            else ""
        )
        return None, f"onnxruntime could not start CUDA: {why}{hint}"

    def _try_session(self, ort, so, providers: list[str]):
        try:
            return ort.InferenceSession(str(self.path), sess_options=so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types per failure
            raise ContractError(
                f"model file is not a loadable ONNX model: {self.path} ({cause_line(exc)})"
            ) from None

    def _read_contract(self) -> ModelContract:
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise ContractError(
                f"model {self.path.name} has no '{METADATA_KEY}' contract in its metadata; "
                "export it with 'polypvision export' (or add the contract) before use"
            )
        return ModelContract.from_json(meta[METADATA_KEY])

    def _check_graph(self) -> None:
        c = self.contract
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if c.input.name not in inputs:
            raise ContractError(
                f"model contract names input '{c.input.name}' but the graph has {sorted(inputs)}"
            )
        for name in (c.output.name, c.output.presence):
            if name is not None and name not in outputs:
                raise ContractError(
                    f"model contract names output '{name}' but the graph has {sorted(outputs)}"
                )
        dims = _graph_dims(inputs[c.input.name])
        if len(dims) != 4:
            raise ContractError(
                f"model input '{c.input.name}' has rank {len(dims)}; the contract needs a 4-D "
                f"{c.input.layout} tensor"
            )
        if c.input.layout == "NHWC":
            h, w, ch = dims[1], dims[2], dims[3]
        else:
            ch, h, w = dims[1], dims[2], dims[3]
        for got, want, what in (
            (h, c.input.height, "height"),
            (w, c.input.width, "width"),
            (ch, 3, "channels"),
        ):
            if isinstance(got, int) and got != want:
                raise ContractError(
                    f"model input '{c.input.name}' has {what} {got} but the contract says {want} "
                    f"(layout {c.input.layout}); the contract does not match this graph: "
                    "re-export the model"
                )
        out_dims = _graph_dims(outputs[c.output.name])
        if len(out_dims) not in (3, 4):
            raise ContractError(
                f"model output '{c.output.name}' has rank {len(out_dims)}; expected a mask "
                "(N,H,W[,1])"
            )

    def _batch_dim(self) -> int | None:
        dim = _graph_dims(self.session.get_inputs()[0])[0]
        return dim if isinstance(dim, int) else None

    # -- running ----------------------------------------------------------------------------
    @property
    def provider(self) -> str:
        return self.report.name

    @property
    def _pre(self) -> Preprocessor:
        """Fresh buffers on every access (kept for ``training.bench_keras``,
        which calls it once)."""
        return Preprocessor(self.contract.input, self.max_batch)

    def run_batch(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (N, h, w) at model size (:meth:`run_batch_full` without presence)."""
        return self.run_batch_full(x)[0]

    def run_batch_full(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw model call on a preprocessed batch; returns probabilities (N, h, w) at model size.

        A graph with a fixed batch size gets exactly that many frames per call: a batch is cut
        into chunks and the last one padded by repeating its final frame (the padded outputs
        are discarded), so live viewing (one frame) and exports (any batch) both run it.
        """
        fb = self.fixed_batch
        if fb is not None and x.shape[0] != fb:
            parts = [
                [o[: len(x[i : i + fb])] for o in self._run(_padded(x[i : i + fb], fb))]
                for i in range(0, x.shape[0], fb)
            ]
            outs = [np.concatenate([p[k] for p in parts], axis=0) for k in range(len(parts[0]))]
        else:
            outs = self._run(x)
        raw = outs[0]
        presence = outs[1].reshape(-1).astype(np.float32, copy=False) if len(outs) > 1 else None
        probs = to_probabilities(raw, self.contract.output.kind)
        if probs.shape[0] != x.shape[0]:  # a graph that folds the batch would silently lose frames
            raise ContractError(
                f"model {self.path.name} returned {probs.shape[0]} masks for {x.shape[0]} frames; "
                "its graph does not match its contract: re-export the model"
            )
        return probs, presence

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        """One session call; a failure inside the graph becomes one line, not a traceback."""
        try:
            return self.session.run(self._outputs, {self._input_name: x}, self._run_options)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ContractError(
                f"model {self.path.name} failed to run on an input of shape {tuple(x.shape)} "
                f"({cause_line(exc)}); check that its graph matches its contract"
            ) from None

    def predict_small(
        self, frames: Sequence[np.ndarray], pre: Preprocessor | None = None
    ) -> np.ndarray:
        """BGR frames -> probabilities (N, h, w) at the model's input size (no resize back).

        ``pre``: the caller's own reusable buffers (a stream's); without it the input is built
        in fresh memory, which is what makes this safe to call from any thread.
        """
        return self.infer_small(frames, pre)[0]

    def infer_small(
        self, frames: Sequence[np.ndarray], pre: Preprocessor | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`predict_small` plus the frame-level presence (N,) when the model has one."""
        pre = pre if pre is not None else Preprocessor(self.contract.input, max(1, len(frames)))
        return self.run_batch_full(pre(frames))

    def predict(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """BGR frames of any size -> float32 probability maps at each frame's own size."""
        probs = self.predict_small(frames)
        return [resize_to(p, f.shape[1], f.shape[0]) for p, f in zip(probs, frames)]


def _padded(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` with its last item repeated up to ``n`` items (a fixed-batch graph's input)."""
    if x.shape[0] >= n:
        return x
    return np.concatenate([x, np.repeat(x[-1:], n - x.shape[0], axis=0)], axis=0)
