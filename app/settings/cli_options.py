"""The one table from command-line options to settings fields, used by the CLI for headless runs, the
GUI and ``--config`` files alike: options are applied over the loaded settings and checked by the
same rules (``schema``), and the error names the option."""
from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass
from typing import Any, Callable

from bgswap.inference.backends import BACKENDS, COMPUTE_TARGETS, PRECISIONS
from bgswap.inference.background_spec import SYNTAX
from bgswap.inference.resources import SHIPPED_MODELS

from .convert import set_path
from .presets import PRESET_NAMES, preset_values
from .schema import Settings, SettingsError


def resolution(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"resolution {text!r} must look like 640x480") from None
    return w, h


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


@dataclass(frozen=True)
class Option:
    flag: str
    fields: tuple[str, ...]                 # dotted settings paths the value goes to
    help: str
    type: Callable[[str], Any] | None = None
    const: Any = None                       # flags without a value store this
    choices: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()
    metavar: str | None = None              # how --help names the value (default: from the type)

    @property
    def dest(self) -> str:
        return "opt_" + self.flag.lstrip("-").replace("-", "_")

    def values(self, value: Any) -> dict[str, Any]:
        parts = value if len(self.fields) > 1 else (value,)
        return dict(zip(self.fields, parts))


OPTIONS: tuple[Option, ...] = (
    Option("--source", ("engine.source",), "demo | camera index (0) | /dev/videoN | image or video file", metavar="demo|N|/dev/videoN|FILE"),
    Option("--background", ("engine.background",), SYNTAX, metavar="SPEC"),
    Option("--resolution", ("engine.width", "engine.height"), "capture and output size, e.g. 1280x720",
           type=resolution, metavar="WxH"),
    Option("--fps", ("engine.fps",), "capture and output rate", type=number, metavar="FPS"),
    Option("--mirror", ("engine.mirror",), "flip the image horizontally", const=True),
    Option("--sync", ("engine.async_segmentation",), "a frame waits while the model makes its mask, instead of "
           "taking the newest mask; the model still runs at most --mask-rate times a second (the last mask "
           "serves the frames between): add --mask-rate 0 to segment every frame", const=False),
    Option("--model", ("engine.model",), "shipped model: auto (the light network on the CPU, BiSeNetV2 on a "
           "GPU), portrait_mobileseg or portrait_bisenetv2", choices=("auto", *SHIPPED_MODELS)),
    Option("--model-dir", ("engine.model_dir",), "folder with model.onnx / model.json + meta.json", metavar="DIR"),
    Option("--backend", ("engine.backend",), "inference runtime", choices=BACKENDS),
    Option("--compute", ("engine.compute",), "where the model runs", choices=COMPUTE_TARGETS),
    Option("--tensorrt", ("engine.tensorrt",), "TensorRT fp16 on a CUDA GPU (Paddle backend)", const=True),
    Option("--input-size", ("engine.input_size",), "model input size (multiple of 32; smaller is faster)",
           type=whole_number, metavar="PX"),
    Option("--threads", ("engine.threads",), "model threads", type=whole_number, metavar="N"),
    Option("--precision", ("engine.precision",),
           "model precision: auto (int8 on the CPU when the model ships it), fp32 or int8", choices=PRECISIONS),
    Option("--preset", ("engine.preset",), "battery | balanced (default) | quality: the model's rate, threads, "
           "passes and size in one choice (options below still win)", choices=PRESET_NAMES),
    Option("--mask-rate", ("engine.mask_rate",), "model runs per second at most (0 = every frame)", type=number, metavar="PER_S"),
    Option("--passes", ("engine.passes",), "1, or 2 to average in the mirror image", type=whole_number, metavar="1|2"),
    Option("--threshold", ("engine.refine.threshold",), "probability that counts as person (0-1)", type=number, metavar="0-1"),
    Option("--feather", ("engine.refine.feather",), "edge softness (0-0.5)", type=number, metavar="0-0.5"),
    Option("--temporal", ("engine.refine.temporal",), "temporal smoothing, 0 = off (0-0.99)", type=number, metavar="0-0.99"),
    Option("--largest-person", ("engine.refine.largest_person_only",), "keep only the largest person", const=True),
    Option("--decontaminate", ("engine.refine.decontaminate",), "edge pixels take your own colour, not the room's",
           const=True),
    Option("--light-wrap", ("engine.refine.light_wrap",), "the new background's light on your outline, 0 = off (0-1)",
           type=number, metavar="0-1"),
    Option("--auto-frame", ("engine.auto_frame",), "pan and zoom to keep you centred and sized like a video call "
           "(1.5x at most)", const=True),
    Option("--virtual-cam", ("outputs.virtual_camera",), "publish to a virtual camera", const=True),
    Option("--vcam-device", ("outputs.vcam_device",), "virtual camera device, e.g. /dev/video2",
           aliases=("--device",), metavar="/dev/videoN"),
    Option("--vcam-backend", ("outputs.vcam_backend",), "pyvirtualcam backend name (default: any that works)", metavar="NAME"),
    Option("--output", ("outputs.output",), "also write the result to this video file (.mp4/.avi)", metavar="FILE"),
    Option("--overwrite", ("outputs.overwrite",), "replace an existing --output file", const=True),
    Option("--frames", ("outputs.frames",), "stop after this many output frames (the file gets exactly these)",
           type=whole_number, metavar="N"),
    Option("--duration", ("outputs.duration",), "stop after this many seconds", type=number, metavar="SECONDS"),
    Option("--stats-every", ("outputs.stats_every",), "seconds between stats lines (headless)", type=number, metavar="SECONDS"),
)


def _shown(value: Any) -> str:
    """An option's value as the user typed it (500, not 500.0; 8x8 for a resolution)."""
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add every option of the table; options not given stay out of the namespace's values."""
    for opt in OPTIONS:
        kwargs: dict[str, Any] = {"dest": opt.dest, "help": opt.help, "default": None}
        if opt.const is not None:
            kwargs.update(action="store_const", const=opt.const)
        else:
            if opt.type is not None:
                kwargs["type"] = opt.type
            if opt.choices:
                kwargs["choices"] = opt.choices
            kwargs["metavar"] = opt.metavar or ("{" + ",".join(opt.choices) + "}" if opt.choices else "VALUE")
        parser.add_argument(opt.flag, *opt.aliases, **kwargs)


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """``{dotted field: value}`` for every option the user gave."""
    out: dict[str, Any] = {}
    for opt in OPTIONS:
        value = getattr(args, opt.dest, None)
        if value is not None:
            out.update(preset_values(value) if opt.flag == "--preset" else opt.values(value))
    return out


def apply_options(settings: Settings, args: argparse.Namespace) -> tuple[Settings, dict[str, Any]]:
    """A copy of ``settings`` with the given options applied and checked; returns it and the applied
    ``{field: value}``. SettingsError names the option, e.g. ``--fps 500: must be between 1 and 240``."""
    out = copy.deepcopy(settings)
    given = given_options(args)
    preset = getattr(args, "opt_preset", None)
    if preset is not None:                   # first, so that the other options win over it
        for path, v in preset_values(preset).items():
            set_path(out, path, v)
    for opt in OPTIONS:
        value = getattr(args, opt.dest, None)
        if value is None or opt.flag == "--preset":
            continue
        for path, v in opt.values(value).items():
            try:
                set_path(out, path, v)
            except SettingsError as exc:
                problem = str(exc).split(": ", 1)[-1]
                shown = "" if opt.const is not None else " " + _shown(value)
                raise SettingsError(f"{opt.flag}{shown}: {problem}") from None
    return out, given
