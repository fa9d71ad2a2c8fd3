"""The C++ client (cpp/, issue 47): built with CMake when the compiler, CMake, OpenCV's C++ headers and
nlohmann-json are there (skipped otherwise, saying which is missing), then run as a program: its mattes
against bgswap.inference.Segmenter's on the same fp32 model, and its error exits."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from bgswap.inference.resources import GPU_MODEL, shipped_model_dir

from .conftest import DEMO_PHOTO, ROOT, shared_val_pairs

# BiSeNetV2's export: Debian's OpenCV 4.6 cannot read the MobileSeg export (its adaptive pools compute
# from the input's shape, and 4.6 refuses a dynamic Shape node); OpenCV 5 reads both.
MODEL_DIR = shipped_model_dir(GPU_MODEL)

pytestmark = pytest.mark.slow       # a CMake build, then a process per photo

BUILD_DIR = Path(os.environ.get("BGSWAP_CPP_BUILD_DIR", ROOT / "build" / "cpp"))   # .ci/run builds here first
INCLUDE_DIRS = [Path("/usr/include"), Path("/usr/local/include"), Path("/opt/homebrew/include")]


def _header(*candidates: str) -> bool:
    return any((d / c).is_file() for d in INCLUDE_DIRS for c in candidates)


@pytest.fixture(scope="session")
def cpp_client() -> Path:
    """The built ``bgswap-cpp`` (configured with warnings as errors, built incrementally in BUILD_DIR)."""
    if not shutil.which("cmake"):
        pytest.skip("cmake is not installed (apt install cmake build-essential)")
    if not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        pytest.skip("no C++ compiler (apt install build-essential)")
    if not _header("opencv4/opencv2/dnn.hpp", "opencv2/dnn.hpp"):
        pytest.skip("OpenCV's C++ headers are not installed (apt install libopencv-dev)")
    if not _header("nlohmann/json.hpp"):
        pytest.skip("nlohmann-json is not installed (apt install nlohmann-json3-dev)")
    for cmd in (["cmake", "-S", str(ROOT / "cpp"), "-B", str(BUILD_DIR), "-DBGSWAP_WERROR=ON"],
                ["cmake", "--build", str(BUILD_DIR), "--parallel", "1"]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    exe = BUILD_DIR / "bgswap-cpp"
    assert exe.is_file()
    return exe


def run(exe: Path, *args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)


def agreement(ours: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(share of pixels on the same side of 0.5, mean absolute difference)."""
    return float(((ours >= 0.5) == (reference >= 0.5)).mean()), float(np.abs(ours - reference).mean())


def test_mattes_agree_with_the_python_segmenter(cpp_client, tmp_path):
    """On 20 validation photos, the C++ matte (a PNG, 0-255) against Segmenter(...)(photo): the fp32 model's
    probability at its input shape for the photo, scaled to the photo's size bilinearly."""
    from bgswap.inference import Segmenter

    seg = Segmenter(MODEL_DIR, backend="onnxruntime", compute="cpu", precision="fp32")
    pairs = shared_val_pairs("eg_", 10) + shared_val_pairs("ccp_", 10)
    assert len(pairs) == 20
    figures = []
    for k, (image, _) in enumerate(pairs):
        out = tmp_path / f"{k}.png"
        r = run(cpp_client, "matte", image, out, "--model-dir", MODEL_DIR)
        assert r.returncode == 0, r.stderr
        ours = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
        photo = cv2.imread(str(image), cv2.IMREAD_COLOR)
        assert ours.dtype == np.uint8 and ours.shape == photo.shape[:2], (image.name, ours.shape, photo.shape)
        figures.append((image.name, *agreement(ours.astype(np.float32) / 255.0, seg(photo))))
    report = "\n".join(f"{name}: same side {same:.4%}, mean abs diff {diff:.5f}" for name, same, diff in figures)
    print(report)
    assert all(same >= 0.99 and diff <= 0.01 for _, same, diff in figures), report


@pytest.mark.parametrize("fields", [{"short_side_floor": 0.5}, {"short_side_floor": 0.5, "short_side_step": 64},
                                    {"frame_aspect": False, "input_size": [192, 256]}, {}])
def test_meta_json_input_shape_rules(cpp_client, tmp_path, fields):
    """meta.json's frame-aspect rule with its short-side floor and step (ModelMeta.input_shape), or a fixed
    input size: the C++ client feeds the shape Python does, and the mattes agree."""
    from bgswap.inference import Segmenter

    model = tmp_path / "model"
    model.mkdir()
    (model / "model.onnx").symlink_to(MODEL_DIR / "model.onnx")
    meta = json.loads((MODEL_DIR / "meta.json").read_text()) | fields
    (model / "meta.json").write_text(json.dumps(meta))
    seg = Segmenter(model, backend="onnxruntime", compute="cpu", precision="fp32")
    photo = cv2.imread(str(DEMO_PHOTO))
    for name, frame in {"wide 3:1": photo[200:370], "16:9": cv2.resize(photo[100:388], (640, 360)),
                        "tall 3:4": photo[:, 64:448]}.items():
        cv2.imwrite(str(tmp_path / "in.png"), frame)
        r = run(cpp_client, "matte", tmp_path / "in.png", tmp_path / "m.png", "--model-dir", model, "-v")
        assert r.returncode == 0, r.stderr
        h, w = seg.input_shape(frame.shape[:2])
        assert f"fed at {w}x{h}" in r.stderr, (name, (w, h), r.stderr)
        ours = cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0
        same, diff = agreement(ours, seg(frame))
        assert same >= 0.99 and diff <= 0.01, (name, same, diff)


def test_matte_of_the_demo_photo_from_the_default_model_dir(cpp_client, tmp_path):
    """No --model-dir: the repository's models/portrait_bisenetv2 (found from the current folder here)."""
    r = run(cpp_client, "matte", DEMO_PHOTO, tmp_path / "m.png", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    m = cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_GRAYSCALE)
    assert m.shape == cv2.imread(str(DEMO_PHOTO)).shape[:2]
    assert m[70:140, 190:260].mean() > 200 and m[:100, 450:].mean() < 50     # the face; the wall top right


def test_composite_puts_the_person_on_the_background(cpp_client, tmp_path):
    photo = cv2.imread(str(DEMO_PHOTO))
    r = run(cpp_client, "composite", DEMO_PHOTO, "color:#00FF00", tmp_path / "c.jpg", "--model-dir", MODEL_DIR)
    assert r.returncode == 0, r.stderr
    out = cv2.imread(str(tmp_path / "c.jpg"))
    assert out.shape == photo.shape
    assert np.abs(out[70:140, 190:260].astype(int) - photo[70:140, 190:260]).mean() < 6      # the face kept
    assert np.abs(out[:100, 450:].astype(int) - (0, 255, 0)).mean() < 6                   # the wall is green


def test_video_writes_a_playable_file_and_prints_stage_times(cpp_client, tmp_path):
    clip = tmp_path / "in.mp4"
    photo = cv2.resize(cv2.imread(str(DEMO_PHOTO)), (320, 240))
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30, (320, 240))
    for i in range(12):
        w.write(np.roll(photo, 2 * i, axis=1))
    w.release()
    r = run(cpp_client, "video", clip, tmp_path / "out.mp4", "--background", "blur", "--model-dir", MODEL_DIR)
    assert r.returncode == 0, r.stderr
    assert "fps" in r.stdout and "model" in r.stdout and "composite" in r.stdout, r.stdout
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == 12


@pytest.mark.parametrize("case", ["missing model dir", "model dir without model.onnx", "corrupt meta.json",
                                  "corrupt model.onnx", "not a video",
                                  "unreadable image", "missing image", "unknown option", "unknown command",
                                  "bad background", "too few paths", "bad --frames", "--show without a display"])
def test_errors_exit_non_zero_with_a_message(cpp_client, tmp_path, case):
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("not a picture")
    half_model = tmp_path / "half"
    half_model.mkdir()
    shutil.copy(MODEL_DIR / "meta.json", half_model / "meta.json")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "meta.json").write_text("{ not json")
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(MODEL_DIR / "meta.json", broken / "meta.json")
    (broken / "model.onnx").write_bytes((MODEL_DIR / "model.onnx").read_bytes()[:100000])
    out = tmp_path / "out.png"
    args, words = {
        "missing model dir": (("matte", DEMO_PHOTO, out, "--model-dir", tmp_path / "nowhere"), "does not exist"),
        "model dir without model.onnx": (("matte", DEMO_PHOTO, out, "--model-dir", half_model), "model.onnx"),
        "corrupt meta.json": (("matte", DEMO_PHOTO, out, "--model-dir", corrupt), "corrupt"),
        "corrupt model.onnx": (("matte", DEMO_PHOTO, out, "--model-dir", broken), "model.onnx"),
        "not a video": (("video", not_an_image, tmp_path / "o.mp4", "--model-dir", MODEL_DIR), "not a readable video"),
        "unreadable image": (("matte", not_an_image, out, "--model-dir", MODEL_DIR), "not a readable image"),
        "missing image": (("composite", tmp_path / "nope.jpg", "blur", out, "--model-dir", MODEL_DIR), "does not exist"),
        "unknown option": (("matte", DEMO_PHOTO, out, "--bogus"), "unknown option '--bogus'"),
        "unknown command": (("segment", DEMO_PHOTO, out), "unknown command"),
        "bad background": (("composite", DEMO_PHOTO, "color:#12", out, "--model-dir", MODEL_DIR), "colour"),
        "too few paths": (("composite", DEMO_PHOTO, out), "takes 3 paths"),
        "bad --frames": (("video", DEMO_PHOTO, tmp_path / "o.mp4", "--frames", "many"), "--frames"),
        "--show without a display": (("video", DEMO_PHOTO, tmp_path / "o.mp4", "--show"), "needs a display"),
    }[case]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([str(cpp_client), *map(str, args)], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2, (r.returncode, r.stderr)           # 2: bad input; never a signal (negative)
    last = r.stderr.strip().splitlines()[-1]      # (FFmpeg may say something first)
    assert words in r.stderr and last.startswith("bgswap-cpp: error:"), r.stderr
    assert not out.exists()


def test_an_unwritable_output_exits_3(cpp_client, tmp_path):
    r = run(cpp_client, "matte", DEMO_PHOTO, tmp_path / "no" / "such" / "dir" / "m.png", "--model-dir", MODEL_DIR)
    assert r.returncode == 3 and "could not write" in r.stderr, (r.returncode, r.stderr)
