"""Evaluate a shipped model through the app's own ``inference.Segmenter``.

    python -m training.evaluate --list ../shared/data/portrait/val.txt [--model-dir models/portrait_bisenetv2]

Prints person IoU (mean over images), 2-class mIoU (accumulated over the set,
PaddleSeg's figure), boundary F-score (3 px tolerance) and model milliseconds per
image, overall and per file-name prefix (``eg_``, ``ccp_`` ...).

``--mask model`` (default) scores the network's own output, upsampled bilinearly;
``--mask app`` scores the matte the app composites: the same output refined by
``inference.refine.MaskRefiner`` with the app's default settings (edge-aware guided
upsampling on the photo), without temporal smoothing, since the photos are unrelated.

``--rooms ../shared/data/rooms/list.txt`` adds the two room checks of ``training.scenes``: the share
of held-out empty rooms called person and how many show a phantom, and person IoU of the list's
people pasted into held-out rooms at webcam framing.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from inference.backends import PRECISIONS
from training.scenes import PHANTOM_SHARE

log = logging.getLogger("training.evaluate")

MASKS = ("model", "app")


def boundary(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8))).astype(bool)


def boundary_f(pred: np.ndarray, gt: np.ndarray, tol: int = 3) -> float:
    """F-score of the predicted outline against the true one, within ``tol`` pixels."""
    bp, bg = boundary(pred), boundary(gt)
    if not bp.any() and not bg.any():
        return 1.0
    if not bp.any() or not bg.any():
        return 0.0
    k = np.ones((2 * tol + 1, 2 * tol + 1), np.uint8)
    near_g = cv2.dilate(bg.astype(np.uint8), k).astype(bool)
    near_p = cv2.dilate(bp.astype(np.uint8), k).astype(bool)
    precision = (bp & near_g).sum() / bp.sum()
    recall = (bg & near_p).sum() / bg.sum()
    return float(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))


def group_of(name: str) -> str:
    """The source prefix of a sample name: ``eg_00012.jpg`` -> ``eg_``."""
    return name.split("_")[0] + "_"


@dataclass(frozen=True)
class ImageScore:
    """One image's pixel counts per class (background, person) and its boundary F-score."""

    inter: np.ndarray
    union: np.ndarray
    boundary_f: float

    @property
    def person_iou(self) -> float:
        return float(self.inter[1] / self.union[1]) if self.union[1] else 1.0


def measure(pred: np.ndarray, gt: np.ndarray) -> ImageScore:
    """Score one boolean person mask against its ground truth."""
    pairs = ((~pred, ~gt), (pred, gt))
    return ImageScore(np.array([np.logical_and(p, g).sum() for p, g in pairs], np.float64),
                      np.array([np.logical_or(p, g).sum() for p, g in pairs], np.float64),
                      boundary_f(pred, gt))


@dataclass
class Scores:
    ious: list = field(default_factory=list)
    bfs: list = field(default_factory=list)
    inter: np.ndarray = field(default_factory=lambda: np.zeros(2))
    union: np.ndarray = field(default_factory=lambda: np.zeros(2))

    def add(self, score: ImageScore) -> None:
        self.inter += score.inter
        self.union += score.union
        self.ious.append(score.person_iou)
        self.bfs.append(score.boundary_f)

    def summary(self) -> dict:
        return {"images": len(self.ious), "person_iou": float(np.mean(self.ious)),
                "miou": float((self.inter / np.maximum(self.union, 1)).mean()),
                "boundary_f": float(np.mean(self.bfs))}


@dataclass
class GroupedScores:
    """Scores over a whole set and per file-name prefix; each image is measured once."""

    overall: Scores = field(default_factory=Scores)
    groups: dict = field(default_factory=lambda: defaultdict(Scores))

    def add(self, name: str, pred: np.ndarray, gt: np.ndarray) -> None:
        score = measure(pred, gt)
        self.overall.add(score)
        self.groups[group_of(name)].add(score)


def evaluate(list_path: str | Path, model_dir: str | Path | None = None, input_size: int | None = None,
             backend: str = "onnxruntime", threads: int = 2, limit: int | None = None,
             precision: str = "auto", mask: str = "model", rooms: str | Path | None = None) -> dict:
    from inference import Segmenter
    from inference.refine import MaskRefiner, RefineSettings
    from training.data import load_pair, read_file_list

    if mask not in MASKS:
        raise ValueError(f"mask must be one of {MASKS}, not {mask!r}")
    seg = Segmenter(model_dir, backend=backend, compute="cpu", input_size=input_size, threads=threads,
                    precision=precision)
    refiner = MaskRefiner(RefineSettings(temporal=0.0)) if mask == "app" else None

    def matte(img: np.ndarray) -> np.ndarray:
        """The scored alpha: the model's output upsampled, or the app's refined matte."""
        return seg(img) if refiner is None else refiner(seg.predict_lowres(img), img)

    pairs = read_file_list(list_path)[:limit]
    scores = GroupedScores()
    model_ms = []
    seg.predict_lowres(np.zeros((480, 640, 3), np.uint8))       # warm-up
    for ip, mp in pairs:
        img, gt = load_pair(ip, mp)
        alpha = matte(img)
        model_ms.append(seg.last_ms)
        scores.add(ip.name, alpha > 0.5, gt.astype(bool))
    out = scores.overall.summary()
    if rooms is not None:
        from training.scenes import load_room_checks, room_figures

        out.update(room_figures(lambda imgs: [matte(i) for i in imgs], *load_room_checks(rooms, list_path)).as_dict())
    out.update(model_ms_mean=float(np.mean(model_ms)), model_ms_median=float(np.median(model_ms)),
               input_size=list(seg.input_size), backend=seg.backend_name, precision=seg.backend.precision,
               threads=threads, mask=mask, mirror_averaged=seg.meta.mirror_averaged,
               groups={k: v.summary() for k, v in sorted(scores.groups.items())})
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", required=True, help="file list in the shared 'image label' format")
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--input-size", type=int, default=None)
    ap.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "paddle"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="auto", choices=PRECISIONS,
                    help="auto = what the app runs (int8 on the CPU when the model ships it)")
    ap.add_argument("--mask", default="model", choices=MASKS,
                    help="model = the model's output; app = after the app's mask refinement")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images")
    ap.add_argument("--rooms", help="room list (../shared/data/rooms/list.txt): also score the held-out empty rooms "
                                    "and the --list people pasted into them")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not Path(args.list).is_file():
        ap.error(f"file list {args.list} not found")
    t = time.time()
    r = evaluate(args.list, args.model_dir, args.input_size, args.backend, args.threads, args.limit, args.precision,
                 args.mask, args.rooms)
    print(f"{'set':8} {'images':>6} {'personIoU':>9} {'mIoU':>7} {'boundF':>7}")
    for name, g in [("all", r), *r["groups"].items()]:
        print(f"{name:8} {g['images']:6d} {g['person_iou']:9.4f} {g['miou']:7.4f} {g['boundary_f']:7.4f}")
    if "room_share" in r:
        print(f"held-out empty rooms ({r['rooms']}): person share {r['room_share']:.4f}, "
              f"phantom rate {r['room_phantom']:.3f} (> {PHANTOM_SHARE:.1%} of the frame)")
        per_group = ", ".join(f"{k[len('pasted_iou_'):]}_ {v:.4f}" for k, v in r.items() if k.startswith("pasted_iou_"))
        print(f"val people pasted into held-out rooms ({r['pasted']}): person IoU {r['pasted_iou']:.4f} ({per_group})")
    print(f"mask: {r['mask']}" + (" (the model averages each photo with its mirror image)" if r["mirror_averaged"] else ""))
    print(f"model {r['backend']} {r['input_size'][1]}x{r['input_size'][0]}, {r['threads']} threads: "
          f"{r['model_ms_mean']:.1f} ms mean, {r['model_ms_median']:.1f} ms median per image "
          f"({time.time() - t:.0f} s total)")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2) + "\n")


if __name__ == "__main__":
    main()
