"""How much of the old room shows round the person: the halo, measured on portraits with true masks.

    python benchmarks/bench_halo.py [--list ../shared/data/portrait/val.txt] [--limit 100] [--peer NAME]

Each person is put onto two contrasting backgrounds (solid blue, and a bright bundled picture)
twice: with the true mask (the reference: only the person's own pixels) and as the app does it,
from the same photo with the app's matte (model, then the app's refinement) and the app's
``Compositor``. The halo is the mean colour difference between the two (0-255, over the three
channels) in the edge band: pixels within 6 px of the true outline, split into the band's person
side and room side. Printed for the app's matte composited plainly, with edge colour
decontamination, with light wrap (0.3) and with both; the matte thresholded at 0.5; and the true
mask feathered by 1 px (what any soft edge costs: the floor). ``--peer NAME`` puts a teacher's
probability (``training.evaluate --peer``'s names: mediapipe, meet, pphumanseg, rvm, mean:a,b,...) through
the app's refinement and compositing instead of the model's: the halo the app would have with that mask.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bgswap.inference import MaskRefiner, Segmenter  # noqa: E402
from bgswap.inference.backgrounds import ImageBackground, cover_fit  # noqa: E402
from bgswap.inference.compose import Compositor  # noqa: E402
from bgswap.inference.refine import RefineSettings  # noqa: E402
from bgswap.inference.resources import backgrounds_dir  # noqa: E402

BAND_PX = 6
APP_VARIANTS = (("the app's matte, plain", False, 0.0), ("the app's matte, decontaminated", True, 0.0),
                ("the app's matte, light wrap 0.3", False, 0.3), ("the app's matte, both", True, 0.3))


def composite(frame: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return np.clip(frame * a + bg * (1 - a) + 0.5, 0, 255).astype(np.uint8)


def halo(list_path: Path, limit: int, peer: str | None = None) -> dict[str, tuple[float, float, float]]:
    """Per variant: the mean error in the band, on its person side and on its room side."""
    from training.data import load_pair, read_file_list

    if peer is None:
        predict = Segmenter(compute="cpu", threads=2).predict_lowres
    else:
        from training.teacher_labels import build_teacher

        predict = build_teacher(peer)
    refiner = MaskRefiner(RefineSettings(temporal=0.0))
    bright = cv2.imread(str(backgrounds_dir() / "low_poly.jpg"))
    errors: dict[str, list[tuple[float, float, float]]] = {}
    pairs = read_file_list(list_path)
    k = np.ones((2 * BAND_PX + 1, 2 * BAND_PX + 1), np.uint8)
    for ip, mp in pairs[:: max(1, len(pairs) // limit)][:limit]:
        img, gt = load_pair(ip, mp)
        h, w = gt.shape
        matte = refiner.matte(predict(img), img)
        alpha = matte.full()
        band = (cv2.dilate(gt, k) - cv2.erode(gt, k)).astype(bool)
        app = {name: Compositor(RefineSettings(decontaminate=dec, light_wrap=wrap)) for name, dec, wrap in APP_VARIANTS}
        for bg in (np.full((h, w, 3), (200, 80, 20), np.uint8), cover_fit(bright, w, h)):
            ref = composite(img, gt.astype(np.float32), bg)
            background = ImageBackground(image=bg, label="bench")
            outs = {name: comp(img, matte, background) for name, comp in app.items()}
            outs["the app's matte, thresholded at 0.5"] = composite(img, (alpha > 0.5).astype(np.float32), bg)
            outs["the true mask feathered 1 px (floor)"] = composite(
                img, cv2.GaussianBlur(gt.astype(np.float32), (0, 0), 1.0), bg)
            for name, out in outs.items():
                d = np.abs(out.astype(np.int16) - ref).mean(axis=2)
                errors.setdefault(name, []).append((float(d[band].mean()), float(d[band & (gt > 0)].mean()),
                                                    float(d[band & (gt == 0)].mean())))
    return {k: tuple(np.mean(v, axis=0)) for k, v in errors.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", default=str(ROOT.parent / "shared" / "data" / "portrait" / "val.txt"))
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--peer", help="a teacher's mask instead of the model's: mediapipe, meet, pphumanseg, rvm, mean:a,b")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    if not Path(args.list).is_file():
        print(f"{args.list} not found: nothing to measure")
        return 1
    r = halo(Path(args.list), args.limit, args.peer)
    print(f"halo: mean colour error (0-255) in the {BAND_PX}-px band round the true outline, "
          f"{args.limit} photos x 2 backgrounds, mask from {args.peer or 'the model'}")
    print(f"  {'matte':42s} {'band':>6s} {'person side':>12s} {'room side':>10s}")
    for name, (allv, person, room) in r.items():
        print(f"  {name:42s} {allv:6.2f} {person:12.2f} {room:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
