"""Why CUDA fell back is onnxruntime's own reason, not a guess (issue 23, defect 5); a machine
without a GPU is told so plainly, not warned for ever."""

from __future__ import annotations

import os

import pytest

from polypvision.model import session
from polypvision.model.session import ProviderReport, Segmenter
from polypvision.viewer.labels import provider_text

ORT_LINE = (
    "2026-12-05 07:00:00.0 [E:onnxruntime:Default, provider_bridge_ort.cc:1862 "
    "TryGetProviderInfo_CUDA] /onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:1539"
    " onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : "
    "Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.12: "
    "cannot open shared object file: No such file or directory\n"
)


@pytest.fixture
def cuda_might_run(monkeypatch):
    """As if this machine had a driver and a CUDA build of onnxruntime."""
    import polypvision.model.runtime as runtime

    monkeypatch.setattr(session, "_cuda_unavailable_reason", lambda _ort: None)
    monkeypatch.setattr(runtime, "preload_cuda_libraries", lambda _ort: None)


def _fake_sessions(monkeypatch, probe):
    import onnxruntime as ort

    real = ort.InferenceSession

    def make(path, sess_options=None, providers=None):
        if providers and providers[0] == "CUDAExecutionProvider":
            return probe(real, path, sess_options)
        return real(path, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(ort, "InferenceSession", make)


def test_a_cuda_session_that_raises_reports_onnxruntimes_reason(
    toy_model, cuda_might_run, monkeypatch
):
    def probe(real, path, so):
        raise RuntimeError(
            "[ONNXRuntimeError] : 1 : FAIL : CUDA failure 100: no CUDA-capable device is detected"
        )

    _fake_sessions(monkeypatch, probe)
    seg = Segmenter(toy_model, "auto")
    assert seg.provider == "CPU"
    assert "no CUDA-capable device is detected" in seg.report.reason
    assert "missing?" not in seg.report.reason
    assert provider_text("auto", seg.report)[1] is True  # a GPU that should run and does not


def test_a_silent_cpu_fallback_reports_what_onnxruntime_logged(
    toy_model, cuda_might_run, monkeypatch, capfd
):
    def probe(real, path, so):
        os.write(2, ORT_LINE.encode())  # what onnxruntime prints, then runs on the CPU
        return real(path, sess_options=so, providers=["CPUExecutionProvider"])

    _fake_sessions(monkeypatch, probe)
    seg = Segmenter(toy_model, "auto")
    assert seg.provider == "CPU"
    assert "libcublasLt.so.12: cannot open shared object file" in seg.report.reason
    assert "missing?" not in seg.report.reason
    assert "provider_bridge_ort" not in capfd.readouterr().err  # not dumped on the console


def test_no_gpu_at_all_is_said_plainly_not_as_a_warning(toy_model, monkeypatch):
    monkeypatch.setattr(session, "_cuda_unavailable_reason", lambda _ort: "no NVIDIA driver found")
    seg = Segmenter(toy_model, "auto")
    assert seg.report.name == "CPU" and "no NVIDIA driver found" in seg.report.reason
    text, warn = provider_text("auto", seg.report)
    assert not warn and "CPU" in text and "\u26a0" not in text
    assert provider_text("auto", ProviderReport("CPU", "CUDA failed", expected=False))[1] is True
