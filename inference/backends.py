"""Inference backends behind one tiny interface, and the one place that picks among them.

``create_backend`` tries the registered runtimes in order (``register_backend``; each says why it
was skipped): Paddle Inference on a CUDA GPU when paddle was built with CUDA and sees a device
(TensorRT fp16 optional), else ONNX Runtime with its CUDA provider when present, else ONNX Runtime
on the CPU; Paddle on the CPU only when asked for by name. ONNX Runtime on the CPU
runs the model's int8 version when it ships one (``precision="auto"``): 1.2-1.7x
faster there (2-core hosts) at the same accuracy. ``paddle`` is only
imported when the Paddle backend is asked for or a GPU is requested: importing
it costs seconds.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from .model_meta import DEFAULT_THREADS, ONNX_FILE, PADDLE_FILES, ModelError, ModelMeta

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "paddle")
COMPUTE_TARGETS = ("auto", "cpu", "gpu")
PRECISIONS = ("auto", "fp32", "int8")   # auto: int8 on the CPU when the model has it, else fp32


class Backend(Protocol):
    """Runs the network: normalised float32 NCHW in, person probability N x 1 x H x W out."""

    name: str
    compute: str       # where it runs: "cpu" or "gpu"
    precision: str

    def run(self, x: np.ndarray) -> np.ndarray: ...


@dataclass
class BackendOptions:
    backend: str = "auto"
    compute: str = "auto"
    threads: int = DEFAULT_THREADS
    tensorrt: bool = False
    input_hw: tuple[int, int] | None = None  # TensorRT builds its engine for this shape (None: meta.json's;
                                             # a frame-aspect model: any shape up to its long side)
    precision: str = "auto"                  # see PRECISIONS; int8 is an ONNX Runtime model
    spin: bool = False                       # ONNX Runtime's worker threads busy-wait between calls (faster
                                             # by a little when the machine is idle, costly when it is not)
    meta: ModelMeta | None = None            # the model's meta.json, when the caller has read it already


def _paddle_gpu_available() -> bool:
    """True when paddle is installed, compiled with CUDA and sees a GPU (imports paddle)."""
    if importlib.util.find_spec("paddle") is None:
        return False
    try:
        import paddle

        return bool(paddle.device.is_compiled_with_cuda()) and paddle.device.cuda.device_count() > 0
    except Exception as exc:  # a broken CUDA install must not stop the CPU path
        log.warning("paddle GPU probe failed: %s", exc)
        return False


def _onnx_file(model_dir: Path, precision: str, on_gpu: bool, meta: ModelMeta | None = None) -> tuple[Path, str]:
    """The ONNX file to load and its precision: int8 when asked, or on the CPU when it ships."""
    int8 = (meta or ModelMeta.load(model_dir)).int8_onnx
    if precision == "int8" and not int8:
        raise ModelError(f"the model in {model_dir} has no int8 version: use precision 'auto' or 'fp32', or "
                         "re-export it with 'python -m training.export ... --calibration-list FILE_LIST'")
    if precision == "auto" and int8 and not (model_dir / int8).is_file():
        log.warning("int8 model %s is listed in meta.json but missing: running fp32", model_dir / int8)
        int8 = ""
    if precision == "int8" or (precision == "auto" and int8 and not on_gpu):
        return model_dir / int8, "int8"
    return model_dir / ONNX_FILE, "fp32"


class OnnxRuntimeBackend:
    def __init__(self, model_dir: Path, compute: str, threads: int, precision: str = "auto", spin: bool = False,
                 meta: ModelMeta | None = None):
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if compute != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        elif compute == "gpu":
            raise RuntimeError("no CUDA provider in onnxruntime")
        path, self.precision = _onnx_file(Path(model_dir), precision, providers[0] == "CUDAExecutionProvider", meta)
        if not path.is_file():
            raise ModelError(f"ONNX model {path} not found: run 'python -m training.export' or reinstall")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        try:
            self.session = ort.InferenceSession(str(path), so, providers=providers)
        except Exception as exc:
            raise ModelError(f"ONNX model {path} cannot be loaded ({exc}); the file is corrupt, re-export it") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.compute = "gpu" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        self.name = "onnxruntime"

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]


class PaddleBackend:
    def __init__(self, model_dir: Path, compute: str, threads: int, tensorrt: bool = False,
                 input_hw: tuple[int, int] | None = None, meta: ModelMeta | None = None):
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # paddle forces 1 otherwise
        import paddle.inference as pi

        model_dir = Path(model_dir)
        for f in PADDLE_FILES:
            if not (model_dir / f).is_file():
                raise ModelError(f"Paddle model file {model_dir / f} not found: run 'python -m training.export'")
        config = pi.Config(str(model_dir / PADDLE_FILES[0]), str(model_dir / PADDLE_FILES[1]))
        if compute == "gpu":
            config.enable_use_gpu(256, 0)
            if tensorrt:
                config.enable_tensorrt_engine(workspace_size=1 << 28, max_batch_size=1, min_subgraph_size=3,
                                              precision_mode=pi.PrecisionType.Half, use_static=False,
                                              use_calib_mode=False)
                meta = meta or ModelMeta.load(model_dir)
                hw = tuple(input_hw or meta.input_size)
                shape = {meta.input_name: [1, 3, *hw]}
                if meta.frame_aspect:        # fed shaped like each frame: any shape up to the long side
                    side = max(hw)
                    config.set_trt_dynamic_shape_info({meta.input_name: [1, 3, 64, 64]},
                                                      {meta.input_name: [1, 3, side, side]},
                                                      {meta.input_name: [1, 3, *meta.input_shape((720, 1280), (side, side))]})
                else:
                    config.set_trt_dynamic_shape_info(shape, shape, shape)
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(threads)
            config.enable_mkldnn()
            # Paddle issue 79749: oneDNN placement crashes on bilinear_interp.
            config.delete_pass("onednn_placement_pass")
        config.disable_glog_info()
        try:
            self.predictor = pi.create_predictor(config)
        except Exception as exc:
            raise ModelError(f"Paddle model in {model_dir} cannot be loaded ({exc}); re-export it") from exc
        self.input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self.output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])
        self.compute = compute
        self.name = "paddle"
        self.precision = "fp16" if compute == "gpu" and tensorrt else "fp32"

    def run(self, x: np.ndarray) -> np.ndarray:
        self.input.reshape(x.shape)
        self.input.copy_from_cpu(np.ascontiguousarray(x))
        self.predictor.run()
        return self.output.copy_to_cpu()


class Unavailable(Exception):
    """A runtime cannot serve these options on this machine; the message says why (``create_backend``
    tries the next one)."""


@dataclass(frozen=True)
class Runtime:
    """A registered way to run the model: ``build(model_dir, opts)`` returns a Backend or raises Unavailable."""

    name: str                  # the ``backend`` option that asks for it
    label: str                 # what the skip log calls it
    build: Callable[[Path, BackendOptions], Backend]
    auto: bool = True          # tried for ``backend="auto"`` (else only when named)


RUNTIMES: list[Runtime] = []


def register_backend(runtime: Runtime) -> None:
    """Add a runtime; ``create_backend`` tries them in the order registered (as pyvirtualcam does its
    camera backends). A new runtime is one builder and one call to this."""
    RUNTIMES.append(runtime)


def create_backend(model_dir: str | Path, opts: BackendOptions) -> Backend:
    """The first registered runtime that can serve ``opts`` (only those named ``opts.backend`` unless it
    is "auto"); says at INFO why each one before it was skipped."""
    if opts.backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {opts.backend!r}")
    if opts.compute not in COMPUTE_TARGETS:
        raise ValueError(f"compute must be one of {COMPUTE_TARGETS}, not {opts.compute!r}")
    if opts.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {opts.precision!r}")
    if opts.precision == "int8" and opts.backend == "paddle":
        raise ValueError("precision 'int8' is an ONNX Runtime model: use backend 'onnxruntime' or 'auto'")
    model_dir = Path(model_dir)
    skipped = []
    for rt in RUNTIMES:
        if (opts.backend == "auto" and not rt.auto) or opts.backend not in ("auto", rt.name):
            continue
        try:
            return rt.build(model_dir, opts)
        except Unavailable as why:
            log.info("%s skipped: %s", rt.label, why)
            skipped.append(f"{rt.label}: {why}")
    raise ModelError("no runtime can run the model here (" + "; ".join(skipped) + ")")


def _paddle_on_gpu(model_dir: Path, opts: BackendOptions) -> Backend:
    """Paddle Inference on a CUDA GPU (TensorRT fp16 optional): the default wherever paddle sees one."""
    if opts.compute == "cpu" or opts.precision == "int8":
        raise Unavailable("the CPU was asked for" if opts.compute == "cpu" else "int8 is an ONNX Runtime model")
    if opts.backend == "auto" and opts.compute == "auto" and not _cuda_hint():
        raise Unavailable("no NVIDIA driver")
    if importlib.util.find_spec("paddle") is None:
        raise Unavailable("PaddlePaddle is not installed (pip install '.[paddle]')")
    if not _paddle_gpu_available():
        if opts.compute == "gpu":
            log.warning("no CUDA GPU visible to paddle: using the CPU")
        raise Unavailable("no CUDA GPU visible to paddle")
    try:
        return PaddleBackend(model_dir, "gpu", opts.threads, opts.tensorrt, opts.input_hw, meta=opts.meta)
    except ModelError:
        raise
    except Exception as exc:   # a broken CUDA/TensorRT install: the CPU still works
        log.warning("Paddle GPU predictor failed (%s): trying the next runtime", exc)
        raise Unavailable(f"the GPU predictor failed: {exc}") from exc


def _onnxruntime(model_dir: Path, opts: BackendOptions) -> Backend:
    """ONNX Runtime: its CUDA provider where present, else the CPU (int8 there when the model ships it)."""
    try:
        return OnnxRuntimeBackend(model_dir, opts.compute, opts.threads, opts.precision, opts.spin, opts.meta)
    except RuntimeError as exc:
        if isinstance(exc, ModelError) or opts.compute != "gpu":
            raise
        log.warning("%s: using ONNX Runtime on the CPU", exc)
        return OnnxRuntimeBackend(model_dir, "cpu", opts.threads, opts.precision, opts.spin, opts.meta)


def _paddle_on_cpu(model_dir: Path, opts: BackendOptions) -> Backend:
    """Paddle Inference on the CPU: only when paddle is asked for by name."""
    if importlib.util.find_spec("paddle") is None:
        raise ModelError("backend 'paddle' needs PaddlePaddle: pip install '.[paddle]'")
    return PaddleBackend(model_dir, "cpu", opts.threads, opts.tensorrt, opts.input_hw, meta=opts.meta)


register_backend(Runtime("paddle", "Paddle Inference on a CUDA GPU", _paddle_on_gpu))
register_backend(Runtime("onnxruntime", "ONNX Runtime", _onnxruntime))
register_backend(Runtime("paddle", "Paddle Inference on the CPU", _paddle_on_cpu, auto=False))


def gpu_expected(backend: str, compute: str) -> bool:
    """Whether ``create_backend`` will run on a GPU for these options: what picks the default model
    (BiSeNetV2 on a GPU, the lighter network on the CPU). Imports paddle only where a driver is seen."""
    if compute == "cpu":
        return False
    if compute == "gpu":
        return True
    return backend in ("auto", "paddle") and _cuda_hint() and _paddle_gpu_available()


def _cuda_hint() -> bool:
    """Cheap check for an NVIDIA driver before paying for ``import paddle``."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists() or bool(
        os.environ.get("CUDA_VISIBLE_DEVICES"))
