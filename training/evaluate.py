"""Evaluate a shipped model through the app's own ``inference.Segmenter``.

    python -m training.evaluate --list ../shared/data/portrait/val.txt [--model-dir models/portrait_bisenetv2]

Prints person IoU (mean over images), 2-class mIoU (accumulated over the set,
PaddleSeg's figure), boundary F-score (3 px tolerance) and model milliseconds per
image, overall and per file-name prefix (``eg_``, ``ccp_`` ...).

``--mask model`` (default) scores the network's own output, upsampled bilinearly;
``--mask app`` scores the matte the app composites: the same output refined by
``bgswap.inference.refine.MaskRefiner`` with the app's default settings (edge-aware guided
upsampling on the photo), without temporal smoothing, since the photos are unrelated.

``--peer NAME`` scores a teacher instead of the model through the same checks (``mediapipe``, ``meet``,
``pphumanseg``, ``rvm`` or ``mean:a,b,...``, the mean of their probabilities; ``training.teacher_labels``).

``--rooms ../shared/data/rooms/list.txt`` adds the two room checks of ``training.scenes``: the share
of held-out empty rooms called person and how many show a phantom, and person IoU of the list's
people pasted into held-out rooms at webcam framing.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from bgswap.inference.backends import PRECISIONS
from bgswap.inference.model_meta import DEFAULT_THREADS
from training.metrics import PHANTOM_SHARE, GroupedScores

log = logging.getLogger("training.evaluate")

MASKS = ("model", "app")


def evaluate(list_path: str | Path, model_dir: str | Path | None = None, input_size: int | None = None,
             backend: str = "onnxruntime", threads: int = DEFAULT_THREADS, limit: int | None = None,
             precision: str = "auto", mask: str = "model", rooms: str | Path | None = None,
             peer: str | None = None) -> dict:
    from bgswap.inference import Segmenter
    from bgswap.inference.refine import MaskRefiner, RefineSettings

    if mask not in MASKS:
        raise ValueError(f"mask must be one of {MASKS}, not {mask!r}")
    if peer is not None:
        return _evaluate_peer(list_path, peer, limit, rooms)
    seg = Segmenter(model_dir, backend=backend, compute="cpu", input_size=input_size, threads=threads,
                    precision=precision)
    refiner = MaskRefiner(RefineSettings(temporal=0.0)) if mask == "app" else None

    def matte(img: np.ndarray) -> np.ndarray:
        """The scored alpha: the model's output upsampled, or the app's refined matte."""
        return seg(img) if refiner is None else refiner(seg.predict_lowres(img), img)

    seg.predict_lowres(np.zeros((480, 640, 3), np.uint8))       # warm-up
    out = _checks(list_path, matte, lambda: seg.last_ms, limit, rooms)
    out.update(input_size=list(seg.input_size), frame_aspect=seg.meta.frame_aspect, backend=seg.backend_name,
               precision=seg.backend.precision,
               threads=threads, mask=mask, mirror_averaged=seg.meta.mirror_averaged)
    return out


def _checks(list_path, matte, last_ms, limit, rooms) -> dict:
    """Score ``matte`` (BGR photo -> person probability at its size) on the list and, with ``rooms``,
    on the room checks: the figures, per source too, and each call's milliseconds (``last_ms()``)."""
    from training.data import load_pair, read_file_list

    scores, model_ms = GroupedScores(), []
    for ip, mp in read_file_list(list_path)[:limit]:
        img, gt = load_pair(ip, mp)
        alpha = matte(img)
        model_ms.append(last_ms())
        scores.add(ip.name, alpha > 0.5, gt.astype(bool))
    out = scores.overall.summary()
    if rooms is not None:
        from training.scenes import load_room_checks, room_figures

        out.update(room_figures(lambda imgs: [matte(i) for i in imgs], *load_room_checks(rooms, list_path)).as_dict())
    from training.validation import demo_figures

    out.update(demo_figures(lambda imgs: [matte(i) for i in imgs]))        # the demo photo's flag and shuttle
    out.update(model_ms_mean=float(np.mean(model_ms)), model_ms_median=float(np.median(model_ms)),
               groups={k: v.summary() for k, v in sorted(scores.groups.items())})
    return out


def _evaluate_peer(list_path, peer: str, limit, rooms) -> dict:
    """The same checks on a teacher (or a mean of teachers) instead of the model."""
    from training.teacher_labels import build_teacher

    teacher = build_teacher(peer)
    took = [0.0]

    def matte(img: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        p = teacher(img)
        took[0] = (time.perf_counter() - t) * 1000
        return p

    out = _checks(list_path, matte, lambda: took[0], limit, rooms)
    out.update(input_size=["-", "-"], backend=f"peer {peer}", precision="fp32", threads=2, mask="model",
               mirror_averaged=False)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", required=True, help="file list in the shared 'image label' format")
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--input-size", type=int, default=None)
    ap.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "paddle"))
    ap.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    ap.add_argument("--precision", default="auto", choices=PRECISIONS,
                    help="auto = what the app runs (int8 on the CPU when the model ships it)")
    ap.add_argument("--mask", default="model", choices=MASKS,
                    help="model = the model's output; app = after the app's mask refinement")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images")
    ap.add_argument("--rooms", help="room list (../shared/data/rooms/list.txt): also score the held-out empty rooms "
                                    "and the --list people pasted into them")
    ap.add_argument("--peer", help="score a teacher instead: mediapipe, meet, pphumanseg, rvm or mean:a,b,...")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not Path(args.list).is_file():
        ap.error(f"file list {args.list} not found")
    t = time.time()
    r = evaluate(args.list, args.model_dir, args.input_size, args.backend, args.threads, args.limit, args.precision,
                 args.mask, args.rooms, args.peer)
    print(f"{'set':8} {'images':>6} {'personIoU':>9} {'mIoU':>7} {'boundF':>7}")
    for name, g in [("all", r), *r["groups"].items()]:
        print(f"{name:8} {g['images']:6d} {g['person_iou']:9.4f} {g['miou']:7.4f} {g['boundary_f']:7.4f}")
    if "room_share" in r:
        print(f"held-out empty rooms ({r['rooms']}): person share {r['room_share']:.4f}, "
              f"phantom rate {r['room_phantom']:.3f} (> {PHANTOM_SHARE:.1%} of the frame)")
        per_group = ", ".join(f"{k[len('pasted_iou_'):]}_ {v:.4f}" for k, v in r.items() if k.startswith("pasted_iou_"))
        print(f"val people pasted into held-out rooms ({r['pasted']}): person IoU {r['pasted_iou']:.4f} ({per_group})")
    if "demo_flag" in r:
        print(f"demo photo, mean person probability: flag {r['demo_flag']:.3f}, shuttle {r['demo_shuttle']:.3f}")
    print(f"mask: {r['mask']}" + (" (the model averages each photo with its mirror image)" if r["mirror_averaged"] else ""))
    shape = (f"shaped like each photo, long side {max(r['input_size'])}" if r.get("frame_aspect")
             else f"{r['input_size'][1]}x{r['input_size'][0]}")
    print(f"model {r['backend']} {shape}, {r['threads']} threads: "
          f"{r['model_ms_mean']:.1f} ms mean, {r['model_ms_median']:.1f} ms median per image "
          f"({time.time() - t:.0f} s total)")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2) + "\n")


if __name__ == "__main__":
    main()
