"""The metadata file (``meta.json``) that ships beside every exported model."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

META_FILE = "meta.json"
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"                 # written beside it when int8 agrees with fp32
PADDLE_FILES = ("model.json", "model.pdiparams")


INPUT_SIZE_STEP = 32                          # the network halves its input five times
INPUT_SIZE_RANGE = (64, 1024)                 # smallest and largest side the runtime accepts
DEFAULT_THREADS = 1                           # model threads: one measures best next to a video call


class ModelError(RuntimeError):
    """The model directory is missing, incomplete or corrupt."""


def input_size_problem(side: int) -> str | None:
    """Why ``side`` cannot be a side of the model's input (None when it can): the one rule for every caller."""
    lo, hi = INPUT_SIZE_RANGE
    if side % INPUT_SIZE_STEP or not lo <= side <= hi:
        return f"input size {side} must be a multiple of {INPUT_SIZE_STEP} between {lo} and {hi}"
    return None


DEFAULT_SHORT_SIDE_FLOOR = 0.75              # BiSeNetV2: at 256x160 a person in a 16:9 frame had too few rows


def input_shape_for(frame_hw: tuple[int, int], long_side: int,
                    short_floor: float = DEFAULT_SHORT_SIDE_FLOOR, step: int = INPUT_SIZE_STEP) -> tuple[int, int]:
    """(height, width) of the model input for a frame of ``frame_hw``: its longer side ``long_side``, the
    other the multiple of ``step`` nearest the frame's aspect but at least ``short_floor`` of ``long_side``
    (at 3/4: 640x480 -> 256x192 wide, a 3:4 photo 192x256 tall, 1280x720 -> 256x192 too; at 9/16,
    1280x720 -> 256x144; measured in the model card)."""
    h, w = frame_hw
    floor = -(-round(long_side * short_floor) // step) * step
    short = min(long_side, max(floor, int(long_side * min(h, w) / max(h, w) / step + 0.5) * step))
    return (long_side, short) if h > w else (short, long_side)


def run_by_shape(frames: list, shape_of, run):
    """``run(frames_of_one_shape, shape)`` once per input shape (``shape_of(frame)``) among ``frames``: its
    result as it is when there is one shape, else a list of the per-frame results in ``frames``' order."""
    shapes = [shape_of(f) for f in frames]
    if len(set(shapes)) == 1:
        return run(frames, shapes[0])
    out: list = [None] * len(frames)
    for shape in set(shapes):
        js = [j for j, s in enumerate(shapes) if s == shape]
        for j, r in zip(js, run([frames[j] for j in js], shape)):
            out[j] = r
    return out


@dataclass
class ModelMeta:
    """How to feed the network and read its output."""

    name: str = "portrait_bisenetv2"
    version: str = "0"
    input_size: tuple[int, int] = (256, 256)      # (height, width) the model was trained for
    dynamic_input: bool = True                    # other sizes (multiples of 32) work too
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    color_order: str = "RGB"                      # channel order of the network input
    layout: str = "NCHW"
    output: str = "person_probability"            # N x 1 x H x W in [0, 1]
    input_name: str = "x"                         # the network input's name in the ONNX and Paddle files
    int8_onnx: str = ""                           # int8-quantised ONNX file beside model.onnx ("" = none)
    mirror_averaged: bool = False                 # the output already averages the mirrored input's
    frame_aspect: bool = False                    # trained on inputs shaped like the frame: feed it input_shape_for
    short_side_floor: float = DEFAULT_SHORT_SIDE_FLOOR   # ... with the short side at least this share of the long
    short_side_step: int = INPUT_SIZE_STEP        # ... and a multiple of this (the network's total stride)
    network: str = "bisenetv2"                    # which network the files hold (the model card says more)
    licence: str = "Apache-2.0"                   # the weights' licence
    derives_from: str = ""                        # released weights it was trained from ("": from nothing);
                                                  # their LICENSE and NOTICE lie beside the files
    extra: dict = field(default_factory=dict)

    def input_shape(self, frame_hw: tuple[int, int], size: tuple[int, int] | None = None) -> tuple[int, int]:
        """(height, width) to feed a frame of ``frame_hw`` at ``size`` (default: the trained size): shaped
        like the frame when the model was trained so (``frame_aspect``), else ``size`` itself."""
        size = tuple(size or self.input_size)
        return (input_shape_for(frame_hw, max(size), self.short_side_floor, self.short_side_step) if self.frame_aspect
                else size)

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / META_FILE
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        path.write_text(json.dumps(d, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, model_dir: str | Path) -> "ModelMeta":
        path = Path(model_dir) / META_FILE
        if not path.is_file():
            raise ModelError(f"model metadata {path} not found: point --model-dir at a folder made by "
                             "'python -m training.export'")
        try:
            d = json.loads(path.read_text())
            known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
            meta = cls(**known)
            meta.input_size = tuple(int(v) for v in meta.input_size)
            meta.mean = tuple(float(v) for v in meta.mean)
            meta.std = tuple(float(v) for v in meta.std)
        except (ValueError, TypeError) as exc:
            raise ModelError(f"model metadata {path} is corrupt ({exc}); re-export the model") from exc
        if meta.color_order not in ("RGB", "BGR") or meta.layout != "NCHW" or len(meta.input_size) != 2:
            raise ModelError(f"model metadata {path}: unsupported color_order/layout/input_size")
        if meta.output != "person_probability":
            raise ModelError(f"model metadata {path}: unsupported output {meta.output!r}")
        return meta
