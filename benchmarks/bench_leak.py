"""What leaks from the old room into the composite: the same person on two rooms, replaced by the same background.

    python benchmarks/bench_leak.py [--limit 100] [--model-dir DIR] [--light-wrap 0.3]
                                    [--feather 0.15] [--list ../shared/data/portrait/val.txt]
                                    [--rooms ../shared/data/rooms]

Each val portrait's person (the photo's pixels, its true mask feathered by 1 px as a camera blends
an edge) is laid on two contrasting backgrounds A and B: first flat walls (green and magenta), then
two room photos (a bright one and a dark one from ``--rooms``). Both frames go through the app's own
pipeline (the model, ``MaskRefiner`` without temporal smoothing, the ``Compositor``) onto the same new
background C (flat blue). With nothing of the old room in the output, A's output and B's are the
same: the leak is the mean colour difference between them (0-255, mean over the three channels) in a
band of +-6 px round the true outline. Unlike ``bench_halo.py`` it does not count where the outline
is drawn, only what of the old room comes through.

Printed plain, decontaminated, with light wrap and with both; once with the app's matte (the model's
probability) and once with the true mask (scaled to the model's output size) put through the same
refinement and compositor: the second isolates edge colour from segmentation. ``--model-dir``
defaults to the shipped CPU model (``resources.default_model_dir()``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bgswap.inference import MaskRefiner, Segmenter  # noqa: E402
from bgswap.inference.backgrounds import ColorBackground, cover_fit  # noqa: E402
from bgswap.inference.compose import Compositor  # noqa: E402
from bgswap.inference.refine import RefineSettings  # noqa: E402
from bgswap.inference.resources import default_model_dir  # noqa: E402

BAND_PX = 6
FEATHER_SIGMA = 1.0
WALLS = ((60, 200, 60), (200, 60, 200))          # BGR: green and magenta
NEW_BG = (200, 80, 20)                           # BGR: the new background, blue
ROOM_POOL = 60                                   # room photos looked at to pick bright and dark ones


def variants(wrap: float) -> tuple[tuple[str, bool, float], ...]:
    return (("plain", False, 0.0), ("decontaminated", True, 0.0), (f"light wrap {wrap:g}", False, wrap),
            ("both", True, wrap))


def room_pairs(rooms_dir: Path, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` pairs (bright room, dark room) from the first ROOM_POOL photos of ``rooms_dir/list.txt``."""
    names = [line.strip() for line in (rooms_dir / "list.txt").read_text().splitlines() if line.strip()]
    step = max(1, len(names) // ROOM_POOL)
    imgs = [im for im in (cv2.imread(str(rooms_dir / p)) for p in names[::step][:ROOM_POOL]) if im is not None]
    imgs.sort(key=lambda im: float(im.mean()))
    half = len(imgs) // 2
    dark, bright = imgs[:half], imgs[::-1][:half]
    return [(bright[i % half], dark[i % half]) for i in range(n)]


def lay(img: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return np.clip(img * a + bg * (1.0 - a) + 0.5, 0, 255).astype(np.uint8)


def leak(list_path: Path, rooms_dir: Path, limit: int, model_dir: str | None, wrap: float,
         feather: float | None = None) -> dict:
    """{(matte, backgrounds): {variant: mean leak}} over ``limit`` portraits."""
    from training.data import load_pair, read_file_list

    seg = Segmenter(model_dir, compute="cpu", threads=1)
    soft = {} if feather is None else {"feather": feather}
    refiner = MaskRefiner(RefineSettings(temporal=0.0, **soft))
    comps = {name: Compositor(RefineSettings(decontaminate=dec, light_wrap=w)) for name, dec, w in variants(wrap)}
    pairs = read_file_list(list_path)
    pairs = pairs[:: max(1, len(pairs) // limit)][:limit]
    rooms = room_pairs(rooms_dir, len(pairs)) if (rooms_dir / "list.txt").is_file() else None
    k = np.ones((2 * BAND_PX + 1, 2 * BAND_PX + 1), np.uint8)
    scores: dict = {}
    for n, (ip, mp) in enumerate(pairs):
        img, gt = load_pair(ip, mp)
        h, w = gt.shape
        alpha = cv2.GaussianBlur(gt.astype(np.float32), (0, 0), FEATHER_SIGMA)
        band = (cv2.dilate(gt, k) - cv2.erode(gt, k)).astype(bool)
        new_bg = ColorBackground(NEW_BG)
        true_small = cv2.resize(alpha, seg.input_shape((h, w))[::-1], interpolation=cv2.INTER_AREA)
        backdrops = [("flat walls", [np.full((h, w, 3), c, np.uint8) for c in WALLS])]
        if rooms is not None:
            backdrops.append(("room photos", [cover_fit(r, w, h) for r in rooms[n]]))
        for where, (bg_a, bg_b) in backdrops:
            frames = [lay(img, alpha, bg_a), lay(img, alpha, bg_b)]
            for matte_kind in ("app's matte", "true mask"):
                mattes = [refiner.matte(seg.predict_lowres(f) if matte_kind == "app's matte" else true_small, f)
                          for f in frames]
                for name, comp in comps.items():
                    out_a, out_b = (comp(f, m, new_bg) for f, m in zip(frames, mattes))
                    d = cv2.absdiff(out_a, out_b).mean(axis=2)
                    scores.setdefault((matte_kind, where), {}).setdefault(name, []).append(float(d[band].mean()))
    return {key: {name: float(np.mean(v)) for name, v in by.items()} for key, by in scores.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", default=str(ROOT.parent / "shared" / "data" / "portrait" / "val.txt"))
    ap.add_argument("--rooms", default=str(ROOT.parent / "shared" / "data" / "rooms"))
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--model-dir", default=None, help="default: the shipped CPU model (resources.default_model_dir())")
    ap.add_argument("--light-wrap", type=float, default=0.3)
    ap.add_argument("--feather", type=float, help="the soft ramp's half-width (default: the app's, 0.15)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    if not Path(args.list).is_file():
        print(f"{args.list} not found: nothing to measure")
        return 1
    model_dir = args.model_dir or str(default_model_dir())
    t0 = time.monotonic()
    r = leak(Path(args.list), Path(args.rooms), args.limit, model_dir, args.light_wrap, args.feather)
    names = [v[0] for v in variants(args.light_wrap)]
    print(f"leak: mean colour difference (0-255) between the outputs from backgrounds A and B, in the "
          f"+-{BAND_PX} px band round the true outline; {args.limit} portraits, new background blue; "
          f"model {model_dir}" + (f", feather {args.feather:g}" if args.feather is not None else "")
          + f" ({time.monotonic() - t0:.0f} s)")
    print(f"  {'matte / backgrounds':32s} " + " ".join(f"{n:>15s}" for n in names))
    for (matte_kind, where), by in r.items():
        plain = by["plain"]
        print(f"  {matte_kind + ', ' + where:32s} " + " ".join(
            f"{by[n]:6.2f} ({by[n] / plain:4.2f})" for n in names))
    print("  (in brackets: the share of plain)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
