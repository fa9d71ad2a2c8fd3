"""Measure edge shimmer: how much the app's matte changes between frames of a still scene.

    python benchmarks/bench_flicker.py [--list ../shared/data/portrait/val.txt] [--photos 10] [--presets]
        [--model-dir DIR]

A still photo (the bundled demo photo, or every n-th photo of a file list, scaled to 640
wide) is fed as a clip of frames that differ only by sensor-like noise (Gaussian, sigma 3);
each refinement setting runs through ``bgswap.inference.refine.MaskRefiner`` with the app's temporal
smoothing, and the mean absolute frame-to-frame alpha change is printed (x1e-3; lower is
steadier), with the refinement's milliseconds per frame. ``--presets`` does the same for each
quality preset as the app runs it: its model (input size, passes), its mask schedule at 30 fps
(rate cap; a still scene keeps its mask) and its refinement.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bgswap.app.sources import DEMO_PHOTO  # noqa: E402
from bgswap.inference import Segmenter  # noqa: E402
from bgswap.inference.refine import MaskRefiner, RefineSettings  # noqa: E402

SETTINGS = {
    "grey r6 eps1e-3": RefineSettings(colour_edges=False, edge_radius=6, edge_eps=1e-3),
    "colour r12 eps3e-4": RefineSettings(edge_radius=12, edge_eps=3e-4),
    "colour default": RefineSettings(),
    "colour r12 eps3e-3": RefineSettings(edge_radius=12, edge_eps=3e-3),
    "colour r12 eps1e-4 feather 0.15": RefineSettings(edge_radius=12, edge_eps=1e-4, feather=0.15),
    "colour r12 eps1e-3 feather 0.15": RefineSettings(edge_radius=12, edge_eps=1e-3, feather=0.15),
}


def photos(list_path: str | None, count: int) -> list[np.ndarray]:
    if list_path is None:
        paths = [DEMO_PHOTO]
    else:
        from training.data import read_file_list

        pairs = read_file_list(list_path)
        paths = [ip for ip, _ in pairs[:: max(1, len(pairs) // count)][:count]]
    out = []
    for p in paths:
        img = cv2.imread(str(p))
        img = cv2.resize(img, (640, round(img.shape[0] * 640 / img.shape[1])), interpolation=cv2.INTER_AREA)
        out.append(img[:480])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", default=None, help="file list in the shared format (default: the demo photo)")
    ap.add_argument("--photos", type=int, default=10)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--noise", type=float, default=3.0)
    ap.add_argument("--presets", action="store_true", help="compare the quality presets instead")
    ap.add_argument("--model-dir", help="a model folder other than the shipped one (e.g. an older version)")
    args = ap.parse_args()
    if args.presets:
        return compare_presets(args)
    seg = Segmenter(args.model_dir, threads=2)
    rng = np.random.default_rng(0)
    clips = []
    for img in photos(args.list, args.photos):
        frames = [np.clip(img + rng.normal(0, args.noise, img.shape), 0, 255).astype(np.uint8)
                  for _ in range(args.frames)]
        clips.append([(f, seg.predict_lowres(f)) for f in frames])
    print(f"{len(clips)} still scene(s), {args.frames} frames each, noise sigma {args.noise}")
    for name, settings in SETTINGS.items():
        changes, ms = [], []
        for clip in clips:
            refiner = MaskRefiner(settings)        # fresh temporal state per clip
            prev = None
            for i, (frame, low) in enumerate(clip):
                t = time.perf_counter()
                alpha = refiner(low, frame)
                ms.append((time.perf_counter() - t) * 1000)
                if prev is not None and i >= 3:         # after the temporal filter has settled
                    changes.append(float(np.abs(alpha - prev).mean()))
                prev = alpha
        print(f"  {name:20s} flicker {np.mean(changes) * 1000:6.3f} e-3   refine {np.median(ms):5.2f} ms")


def compare_presets(args) -> None:
    from bgswap.app.mask_schedule import MaskSchedule
    from bgswap.app.settings import Settings
    from bgswap.app.settings.convert import set_path
    from bgswap.app.settings.presets import PRESET_NAMES, preset_values

    rng = np.random.default_rng(0)
    clips = [[np.clip(img + rng.normal(0, args.noise, img.shape), 0, 255).astype(np.uint8)
              for _ in range(args.frames)] for img in photos(args.list, args.photos)]
    print(f"{len(clips)} still scene(s), {args.frames} frames each at 30 fps, noise sigma {args.noise}")
    for name in PRESET_NAMES:
        s = Settings()
        for path, value in preset_values(name).items():
            set_path(s, path, value)
        e = s.engine
        seg = Segmenter(args.model_dir, input_size=e.input_size, threads=2, passes=e.passes)
        changes, runs = [], 0
        for clip in clips:
            refiner, schedule, low = MaskRefiner(e.refine), MaskSchedule(e.mask_rate), None
            prev = None
            for i, frame in enumerate(clip):
                if low is None or schedule.should_run(frame, i / 30):
                    low, runs = seg.predict_lowres(frame), runs + 1
                alpha = refiner(low, frame)
                if prev is not None and i >= 3:
                    changes.append(float(np.abs(alpha - prev).mean()))
                prev = alpha
        print(f"  {name:10s} flicker {np.mean(changes) * 1000:6.3f} e-3   model runs per frame "
              f"{runs / sum(len(c) for c in clips):.2f}")


if __name__ == "__main__":
    main()
