"""The one place that picks the hardware backend: its decisions on machines we do not have."""
from __future__ import annotations

import shutil

import pytest

import bgswap.inference.backends as backends
from bgswap.inference.backends import BackendOptions, create_backend
from bgswap.inference.model_meta import ModelError, ModelMeta
from bgswap.inference.resources import GPU_MODEL, shipped_model_dir


class FakePaddle:
    def __init__(self, model_dir, compute, threads, tensorrt=False, input_hw=(256, 256), meta=None):
        if FakePaddle.fail:
            raise RuntimeError("CUDA driver version is insufficient")
        self.name, self.compute, self.tensorrt, self.input_hw = "paddle", compute, tensorrt, input_hw

    fail = False


@pytest.fixture
def gpu_machine(monkeypatch):
    FakePaddle.fail = False
    monkeypatch.setattr(backends, "_cuda_hint", lambda: True)
    monkeypatch.setattr(backends, "_paddle_gpu_available", lambda: True)
    monkeypatch.setattr(backends, "PaddleBackend", FakePaddle)


def test_auto_uses_paddle_on_a_cuda_gpu(model_dir, gpu_machine):
    b = create_backend(model_dir, BackendOptions(tensorrt=True, input_hw=(192, 192)))
    assert (b.name, b.compute, b.tensorrt, b.input_hw) == ("paddle", "gpu", True, (192, 192))


def test_broken_gpu_stack_falls_back_to_onnxruntime(model_dir, gpu_machine):
    FakePaddle.fail = True
    b = create_backend(model_dir, BackendOptions())
    assert (b.name, b.compute) == ("onnxruntime", "cpu")


def test_cpu_request_never_touches_the_gpu(model_dir, gpu_machine):
    b = create_backend(model_dir, BackendOptions(compute="cpu"))
    assert (b.name, b.compute) == ("onnxruntime", "cpu")


def test_paddle_backend_without_gpu_runs_on_cpu(model_dir, monkeypatch):
    monkeypatch.setattr(backends, "_paddle_gpu_available", lambda: False)
    monkeypatch.setattr(backends, "PaddleBackend", FakePaddle)
    b = create_backend(model_dir, BackendOptions(backend="paddle", compute="gpu"))
    assert (b.name, b.compute) == ("paddle", "cpu")


def test_onnxruntime_prefers_its_cuda_provider_when_present(model_dir, monkeypatch):
    import onnxruntime as ort

    seen = {}
    real = ort.InferenceSession

    class Session(real):
        def __init__(self, path, so, providers):
            seen["providers"] = providers
            super().__init__(path, so, providers=["CPUExecutionProvider"])

        def get_providers(self):
            return seen["providers"]

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", Session)
    monkeypatch.setattr(backends, "_cuda_hint", lambda: False)
    b = create_backend(model_dir, BackendOptions())
    assert seen["providers"][0] == "CUDAExecutionProvider" and b.compute == "gpu"


def test_precision_auto_runs_int8_on_the_cpu_only_when_the_model_ships_it(tmp_path):
    model_dir = shipped_model_dir(GPU_MODEL)            # BiSeNetV2 ships an int8 version
    assert create_backend(model_dir, BackendOptions(compute="cpu")).precision == "int8"
    assert create_backend(model_dir, BackendOptions(compute="cpu", precision="fp32")).precision == "fp32"
    plain = tmp_path / "fp32_only"
    plain.mkdir()
    shutil.copy(model_dir / "model.onnx", plain)
    shutil.copy(model_dir / "meta.json", plain)        # lists an int8 file that is missing here
    assert create_backend(plain, BackendOptions(compute="cpu")).precision == "fp32"
    with pytest.raises(ModelError, match="model.int8.onnx not found"):
        create_backend(plain, BackendOptions(compute="cpu", precision="int8"))
    meta = ModelMeta.load(model_dir)                   # a model exported without --calibration-list
    meta.int8_onnx = ""
    meta.save(plain)
    assert create_backend(plain, BackendOptions(compute="cpu")).precision == "fp32"
    with pytest.raises(ModelError, match="no int8 version.*--calibration-list"):
        create_backend(plain, BackendOptions(compute="cpu", precision="int8"))
    with pytest.raises(ValueError, match="precision"):
        create_backend(model_dir, BackendOptions(precision="fp16"))
    with pytest.raises(ValueError, match="ONNX Runtime"):
        create_backend(model_dir, BackendOptions(backend="paddle", precision="int8"))


def test_int8_is_not_used_on_a_cuda_provider_unless_asked():
    model_dir = shipped_model_dir(GPU_MODEL)
    assert backends._onnx_file(model_dir, "auto", on_gpu=True)[1] == "fp32"
    assert backends._onnx_file(model_dir, "auto", on_gpu=False)[1] == "int8"
    assert backends._onnx_file(model_dir, "int8", on_gpu=True)[1] == "int8"


def test_the_cuda_hint_reads_cuda_visible_devices(monkeypatch):
    """The cheap GPU hint honours the variable CUDA itself reads (not a made-up name)."""
    from pathlib import Path

    real_exists = Path.exists
    monkeypatch.setattr(Path, "exists", lambda p: False if str(p).startswith(("/proc/driver/nvidia", "/dev/nvidia"))
                        else real_exists(p))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert not backends._cuda_hint()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert backends._cuda_hint()


def test_each_skipped_runtime_says_why(model_dir, monkeypatch, caplog):
    import logging

    monkeypatch.setattr(backends, "_cuda_hint", lambda: False)
    with caplog.at_level(logging.INFO, logger="bgswap.inference.backends"):
        b = create_backend(model_dir, BackendOptions())
    assert b.name == "onnxruntime"
    assert "Paddle Inference on a CUDA GPU skipped: no NVIDIA driver" in caplog.text


def test_a_registered_runtime_is_tried_in_its_turn(model_dir, monkeypatch):
    calls = []

    def refuse(_dir, _opts):
        calls.append("refuse")
        raise backends.Unavailable("not on this machine")

    monkeypatch.setattr(backends, "RUNTIMES", [backends.Runtime("onnxruntime", "a runtime that refuses", refuse),
                                               *backends.RUNTIMES])
    assert create_backend(model_dir, BackendOptions(compute="cpu")).name == "onnxruntime"
    assert calls == ["refuse"]
    monkeypatch.setattr(backends, "RUNTIMES", [backends.Runtime("onnxruntime", "a runtime that refuses", refuse)])
    with pytest.raises(ModelError, match="a runtime that refuses: not on this machine"):
        create_backend(model_dir, BackendOptions(compute="cpu"))
