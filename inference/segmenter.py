"""Person segmentation of BGR frames through whichever backend fits the machine."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np

from .backends import BackendOptions, create_backend, gpu_expected
from .model_meta import DEFAULT_THREADS, ModelMeta, input_size_problem, run_by_shape
from .resources import default_model_dir, shipped_model_dir

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = default_model_dir()      # the CPU's; on a GPU, BiSeNetV2 (``model_dir_for``)


def model_dir_for(model_dir: str | Path | None, model: str = "auto", backend: str = "auto",
                  compute: str = "auto") -> Path:
    """The model folder to load: ``model_dir`` when given, else the shipped model named ``model``, or for
    ``"auto"`` the one for where it will run (``resources.default_model_dir``)."""
    if model_dir is not None:
        return Path(model_dir)
    if model != "auto":
        return shipped_model_dir(model)
    return default_model_dir(gpu=gpu_expected(backend, compute))


def shrink_to(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """``frame`` resized to ``width`` x ``height`` by pixel averaging (INTER_AREA). A frame over twice the
    size is first reduced by the largest whole factor that divides both its sides, OpenCV's fast path
    (a factor that does not divide them is slower than none): the same picture for a third of the
    time at 1280x720."""
    fh, fw = frame.shape[:2]
    if (fh, fw) == (height, width):
        return frame
    k = next(k for k in range(min(fh // height, fw // width), 0, -1) if fh % k == 0 and fw % k == 0) \
        if fh >= height and fw >= width else 1
    if k >= 2:
        frame = cv2.resize(frame, (fw // k, fh // k), interpolation=cv2.INTER_AREA)
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


class Segmenter:
    """``alpha = Segmenter()(frame_bgr)``: float32 HxW in [0, 1], 1 = person.

    ``predict_lowres`` returns the probability at the network's input shape for that frame
    (``input_shape``: the input size, or for a model trained so, shaped like the frame), for callers
    (the mask refiner) that upsample it themselves, edge-aware.
    """

    def __init__(self, model_dir: str | Path | None = None, backend: str = "auto", compute: str = "auto",
                 input_size: int | tuple[int, int] | None = None, threads: int = DEFAULT_THREADS, tensorrt: bool = False,
                 precision: str = "auto", passes: int = 1, spin: bool = False, model: str = "auto"):
        """``passes=2`` also runs the mirror image (one call, batch of two) and averages both: steadier
        edges for twice the model's cost. A model exported mirror-averaged always runs both. Without
        ``model_dir``, ``model`` names a shipped model, or ``"auto"`` picks by where it runs (``model_dir_for``)."""
        self.model_dir = model_dir_for(model_dir, model, backend, compute)
        self.meta = ModelMeta.load(self.model_dir)
        self.input_size = self._check_size(input_size)
        if passes not in (1, 2):
            raise ValueError(f"passes must be 1 or 2, not {passes!r}")
        self.passes = 2 if self.meta.mirror_averaged else passes
        self._mirror_here = passes == 2 and not self.meta.mirror_averaged
        self.backend = create_backend(self.model_dir, BackendOptions(backend, compute, threads, tensorrt,
                                                                     self.input_size, precision, spin, self.meta))
        # blobFromImage subtracts the mean (in the model's channel order) and lays out NCHW in one
        # pass; the per-channel 1/std is then one in-place multiply.
        self._mean255 = tuple(float(m) * 255.0 for m in self.meta.mean)
        self._inv_std = (1.0 / (255.0 * np.asarray(self.meta.std, np.float32))).reshape(1, 3, 1, 1)
        self.last_ms = 0.0
        log.info("segmenter: %s on %s (%s), input %s, model %s v%s%s", self.backend.name, self.backend.compute,
                 self.backend.precision, (f"shaped like the frame, long side {max(self.input_size)}" if self.meta.frame_aspect
                                          else f"{self.input_size[1]}x{self.input_size[0]}"), self.meta.name, self.meta.version,
                 ", mirror-averaged (two passes in one call)" if self.meta.mirror_averaged else "")

    def _check_size(self, size) -> tuple[int, int]:
        if size is None:
            return tuple(self.meta.input_size)
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        if (h, w) != tuple(self.meta.input_size):
            if not self.meta.dynamic_input:
                raise ValueError(f"this model only takes {self.meta.input_size}, not {(h, w)}")
            problem = input_size_problem(h) or input_size_problem(w)
            if problem:
                raise ValueError(problem)
        return int(h), int(w)

    @property
    def backend_name(self) -> str:
        return f"{self.backend.name}/{self.backend.compute}/{self.backend.precision}"

    def input_shape(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """(height, width) of the network input for a frame of ``frame_hw`` (``ModelMeta.input_shape``)."""
        return self.meta.input_shape(frame_hw, self.input_size)

    def preprocess(self, frames_bgr: list[np.ndarray], shape: tuple[int, int] | None = None) -> np.ndarray:
        """BGR uint8 frames -> the model's input at ``shape`` (default: the first frame's ``input_shape``):
        Nx3xHxW float32, resized and normalised per ``meta.json``."""
        h, w = shape or self.input_shape(frames_bgr[0].shape[:2])
        small = [shrink_to(f, w, h) for f in frames_bgr]
        x = cv2.dnn.blobFromImages(small, 1.0, mean=self._mean255, swapRB=self.meta.color_order == "RGB")
        x *= self._inv_std
        return x

    def predict_batch(self, frames_bgr: list[np.ndarray]) -> list[np.ndarray] | np.ndarray:
        """Person probability for several frames, float32 at each one's input shape: one model call for
        frames fed at the same shape (an N x H x W array), one call per shape otherwise (a list)."""
        return run_by_shape(frames_bgr, lambda f: self.input_shape(f.shape[:2]), self._predict_same_shape)

    def _predict_same_shape(self, frames_bgr: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
        x = self.preprocess(frames_bgr, shape)
        t = time.perf_counter()
        if self._mirror_here:
            n = len(frames_bgr)
            out = self.backend.run(np.concatenate([x, x[..., ::-1]]))
            prob = (out[:n, 0] + out[n:, 0, :, ::-1]) * 0.5
        else:
            prob = self.backend.run(x)[:, 0]
        self.last_ms = (time.perf_counter() - t) * 1000
        return np.clip(prob, 0.0, 1.0).astype(np.float32, copy=False)

    def predict_lowres(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Person probability (float32) at the network's input shape for this frame (``input_shape``)."""
        if frame_bgr is None or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise ValueError("expected an HxWx3 BGR uint8 frame")
        return self.predict_batch([frame_bgr])[0]

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        prob = self.predict_lowres(frame_bgr)
        h, w = frame_bgr.shape[:2]
        return cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
