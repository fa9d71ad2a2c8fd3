"""Command line: ``bgswap`` / ``python main.py`` (GUI) and ``--no-gui`` (headless)."""
from __future__ import annotations

import argparse
import logging
import math
import os
import sys

from inference.backends import PRECISIONS
from inference.refine import RefineSettings

from .engine import EngineSettings

log = logging.getLogger("bgswap")


def _display_available() -> bool:
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM", "").split(":")[0] in ("offscreen", "minimal", "vnc"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _resolution(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"resolution {text!r} must look like 640x480") from None
    return w, h


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return v


def _positive_seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    return v


def _fraction(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bgswap", description="Real-time webcam background replacement.")
    p.add_argument("--no-gui", action="store_true", help="run headless (kiosks, servers)")
    p.add_argument("--source", help="demo | camera index (0) | /dev/videoN | image or video file")
    p.add_argument("--background", help="image | video | blur[:1-100] | color:#RRGGBB | green | none")
    p.add_argument("--resolution", type=_resolution, help="capture and output size, e.g. 1280x720")
    p.add_argument("--fps", type=float, help="capture and output rate")
    p.add_argument("--mirror", action="store_true", default=None, help="flip the image horizontally")
    p.add_argument("--virtual-cam", action="store_true", help="publish to a virtual camera")
    p.add_argument("--device", help="virtual camera device, e.g. /dev/video2")
    p.add_argument("--vcam-backend", help="pyvirtualcam backend name (default: any that works)")
    p.add_argument("--output", help="also write the result to this video file (.mp4/.avi)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    p.add_argument("--frames", type=_positive_int, help="stop after this many output frames (the file gets exactly these)")
    p.add_argument("--duration", type=_positive_seconds, help="stop after this many seconds")
    p.add_argument("--config", help="JSON settings file (command-line options win)")
    p.add_argument("--model-dir", help="folder with model.onnx / model.json + meta.json")
    p.add_argument("--backend", choices=("auto", "onnxruntime", "paddle"))
    p.add_argument("--compute", choices=("auto", "cpu", "gpu"), help="where the model runs")
    p.add_argument("--input-size", type=int, help="model input size (multiple of 32; smaller is faster)")
    p.add_argument("--threads", type=int, help="model threads")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="model precision: auto (int8 on the CPU when the model ships it), fp32 or int8")
    p.add_argument("--sync", action="store_true", help="segment every frame before compositing it")
    p.add_argument("--threshold", type=_fraction)
    p.add_argument("--feather", type=float)
    p.add_argument("--temporal", type=_fraction, help="temporal smoothing, 0 = off")
    p.add_argument("--largest-person", action="store_true", default=None, help="keep only the largest person")
    p.add_argument("--stats-every", type=float, default=5.0, help="seconds between stats lines")
    p.add_argument("--install-desktop-entry", action="store_true",
                   help="add BgSwap to the Linux application menu (~/.local/share/applications) and exit")
    p.add_argument("--uninstall-desktop-entry", action="store_true", help="remove that menu entry and exit")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def settings_from_args(args: argparse.Namespace, base: EngineSettings) -> EngineSettings:
    s = base
    if args.source is not None:
        s.source = args.source
    if args.background is not None:
        s.background = args.background
    if args.resolution is not None:
        s.width, s.height = args.resolution
    if args.fps is not None:
        s.fps = args.fps
    if args.mirror:
        s.mirror = True
    if args.model_dir:
        s.model_dir = args.model_dir
    if args.backend:
        s.backend = args.backend
    if args.compute:
        s.device = args.compute
    if args.input_size:
        s.input_size = args.input_size
    if args.threads:
        s.threads = args.threads
    if args.precision:
        s.precision = args.precision
    if args.sync:
        s.async_segmentation = False
    r: RefineSettings = s.refine
    for name in ("threshold", "feather", "temporal"):
        if getattr(args, name) is not None:
            setattr(r, name, getattr(args, name))
    if args.largest_person:
        r.largest_person_only = True
    return s.validate()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.install_desktop_entry or args.uninstall_desktop_entry:
        from . import desktop_entry

        files = desktop_entry.install() if args.install_desktop_entry else desktop_entry.uninstall()
        for path in files:
            print(("installed " if args.install_desktop_entry else "removed ") + str(path))
        return 0
    from .config import load_settings_file

    try:
        base = load_settings_file(args.config) if args.config else None
        if base is None and not args.no_gui:
            from .gui.settings_store import load_gui_settings

            base = load_gui_settings().engine
        if base is None:
            from .sources import default_source

            base = EngineSettings(source=default_source())
        settings = settings_from_args(args, base)
    except ValueError as exc:
        parser.error(str(exc))
    if args.no_gui:
        from .headless import run_headless

        return run_headless(settings, args.virtual_cam, args.device, args.vcam_backend, args.output,
                            args.frames, args.duration, args.stats_every, args.overwrite)
    if not _display_available():
        log.error("no display found for the window: run with --no-gui (e.g. --no-gui --virtual-cam), "
                  "or start it from a desktop session")
        return 2
    from .gui.main_window import run_gui

    return run_gui(settings, args)


if __name__ == "__main__":
    sys.exit(main())
