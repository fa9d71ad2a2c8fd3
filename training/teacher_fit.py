"""How closely a model follows its teacher, on the photos it learnt from and on held-out ones.

    python -m training.teacher_fit [--model-dir DIR] [--teachers mediapipe,meet,pphumanseg,rvm] [--limit N]

The teacher is the mean of the cached teacher probabilities (``training.teacher_labels``). For the
people-in-room photos it prints the model's person IoU against the teacher's label (photos where the
teacher sees at least 1 % person) and the share of pixels where the two agree; for the empty rooms,
the share of pixels each calls person and the model's phantom rate. Each for the training part and
the held-out part (``training.scenes.is_held_out``); in both parts only the rooms training would use
as empty (the teachers' mean calls at most 0.5 % of them person: ``training.scenes.empty_rooms``).

A student that matches its teacher on the training photos but not on the held-out ones has learnt
the photos, not the rule (more or more varied data helps); one that falls short on both alike has
not yet learnt what the labels say (more training, or a bigger network, helps).
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from training.metrics import PHANTOM_SHARE
from training.teacher_labels import DEFAULT_OUT, ENSEMBLE

log = logging.getLogger("training.teacher_fit")

SETS = {"people_rooms": "../shared/data/people_rooms/list.txt", "rooms": "../shared/data/rooms/list.txt"}


@dataclass
class Fit:
    """One set and part: how the model's person mask (prob > 0.5) compares with the teacher's."""

    photos: int
    iou: float | None          # mean person IoU against the teacher, photos where it sees >= 1 % person
    agreement: float           # share of pixels where model and teacher agree
    model_share: float         # share of pixels the model calls person
    teacher_share: float
    model_phantom: float | None   # empty rooms: share of photos where the model calls more than
                                  # PHANTOM_SHARE person (None for photos of people)


def fit(predict, images: list[np.ndarray], labels: list[np.ndarray], rooms: bool = True) -> Fit:
    """``predict`` (BGR photo -> person probability at its size) against ``labels`` (uint8 0-255);
    ``rooms``: the photos are empty rooms (the phantom rate means something)."""
    ious, agree, shares, tshares = [], [], [], []
    for img, label in zip(images, labels):
        p, t = predict(img) > 0.5, label >= 128
        agree.append(float((p == t).mean()))
        shares.append(float(p.mean()))
        tshares.append(float(t.mean()))
        if t.mean() >= 0.01:
            ious.append(float((p & t).sum() / max(1, (p | t).sum())))
    return Fit(len(images), float(np.mean(ious)) if ious else None, float(np.mean(agree)), float(np.mean(shares)),
               float(np.mean(tshares)), float(np.mean(np.array(shares) > PHANTOM_SHARE)) if rooms else None)


def teacher_fit(predict, lists: dict[str, str] = SETS, teachers=ENSEMBLE, label_root: str | Path = DEFAULT_OUT,
                limit: int | None = None, room_max_person: float = 0.005) -> dict[str, dict[str, Fit]]:
    """Per set (name -> image list; "rooms" are empty rooms, kept where the teachers call at most
    ``room_max_person`` person, as training does) and part ("training", "held-out"): the model's ``Fit``."""
    from training.scenes import empty_rooms, load_photo_set
    from training.teacher_labels import load_labels

    out: dict[str, dict[str, Fit]] = {}
    for name, lst in lists.items():
        labels = load_labels(lst, label_root, teachers)
        for part, held_out in (("training", False), ("held-out", True)):
            photos = load_photo_set(lst, held_out=held_out, long_side=320, labels=labels, limit=limit)
            if name == "rooms":
                photos = empty_rooms(photos, room_max_person)
            out.setdefault(name, {})[part] = fit(predict, photos.images, photos.alphas, rooms=name == "rooms")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default=None, help="the model to check (default: the shipped one)")
    ap.add_argument("--teachers", default=",".join(ENSEMBLE), help="whose mean is the teacher")
    ap.add_argument("--labels", default=str(DEFAULT_OUT), help="the teacher-label cache (training.teacher_labels)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos of each part")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from bgswap.inference import Segmenter

    for lst in SETS.values():
        if not Path(lst).is_file():
            ap.error(f"{lst} not found: run from the repository with ../shared beside it")
    seg = Segmenter(args.model_dir, compute="cpu", threads=args.threads)
    r = teacher_fit(seg, teachers=args.teachers.split(","), label_root=args.labels, limit=args.limit)
    print(f"the model against the mean of {args.teachers}")
    print(f"{'set':13s} {'part':9s} {'photos':>6s} {'IoU':>6s} {'agree':>7s} {'model %':>8s} {'teacher %':>9s} "
          f"{'phantom':>8s}")
    for name, parts in r.items():
        for part, f in parts.items():
            d = asdict(f)
            iou = f"{d['iou']:.3f}" if d["iou"] is not None else "-"
            phantom = f"{d['model_phantom']:.3f}" if d["model_phantom"] is not None else "-"
            print(f"{name:13s} {part:9s} {f.photos:6d} {iou:>6s} {f.agreement:7.4f} {100 * f.model_share:8.2f} "
                  f"{100 * f.teacher_share:9.2f} {phantom:>8s}")


if __name__ == "__main__":
    main()
