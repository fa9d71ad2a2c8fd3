"""Shared fixtures: the shipped model, real frames, a recording virtual-camera backend."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "models" / "portrait_mobileseg"          # the CPU's default (resources.CPU_MODEL)
SHARED = ROOT.parent / "shared" / "data" / "portrait"
DEMO_PHOTO = ROOT / "assets" / "demo" / "astronaut.jpg"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    assert (MODEL_DIR / "model.onnx").is_file(), "the shipped model is missing from models/"
    return MODEL_DIR


@pytest.fixture(scope="session")
def segmenter(model_dir):
    from bgswap.inference import Segmenter

    return Segmenter(model_dir, backend="onnxruntime", compute="cpu")


@pytest.fixture(scope="session")
def portrait_frame() -> np.ndarray:
    """A real 640x480 portrait frame (NASA's public-domain astronaut photo, as the demo shows it)."""
    from bgswap.app.sources import CaptureRequest, DemoSource

    src = DemoSource(CaptureRequest(640, 480, 30), realtime=False)
    src.open()
    return src.frame_at(0)


def shared_val_pairs(prefix: str, n: int) -> list[tuple[Path, Path]]:
    if not (SHARED / "val.txt").is_file():
        pytest.skip("../shared/data/portrait is not present")
    from training.data import read_file_list

    pairs = [p for p in read_file_list(SHARED / "val.txt") if p[0].name.startswith(prefix)]
    return pairs[:: max(1, len(pairs) // n)][:n]


class RecordingBackend:
    """A pyvirtualcam backend that keeps what it is sent (registered as 'recording')."""

    instances: list["RecordingBackend"] = []
    fail_with: str | None = None

    def __init__(self, *, width, height, fps, fourcc, device, **kw):
        if RecordingBackend.fail_with:
            raise RuntimeError(RecordingBackend.fail_with)
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc
        self._device = device or "/dev/video-recording"
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.closed = False
        self.lock = threading.Lock()
        RecordingBackend.instances.append(self)

    def send(self, frame):
        with self.lock:
            self.frames.append(frame.reshape(self.height, self.width, 3).copy())
            self.times.append(time.monotonic())

    def close(self):
        self.closed = True

    def device(self):
        return self._device

    def native_fourcc(self):
        return None


@pytest.fixture
def recording_backend():
    import pyvirtualcam

    RecordingBackend.instances = []
    RecordingBackend.fail_with = None
    pyvirtualcam.register_backend("recording", RecordingBackend)
    yield RecordingBackend
    RecordingBackend.fail_with = None


def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    h, w = frames[0].shape[:2]
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        wr.write(f)
    wr.release()
    return path
