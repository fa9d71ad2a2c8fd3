"""One ONNX Runtime call of each network, one thread: the shipped models against the peers, side by side.

    python benchmarks/bench_model_call.py                      # every shipped model, fp32 and int8, and the peers
    python benchmarks/bench_model_call.py --model-dir DIR ...  # other exports too
    python benchmarks/bench_model_call.py --rounds 30 --frame 1280x720

Each model is fed what the app feeds it for a frame of ``--frame`` (``ModelMeta.input_shape``); the
peers (MediaPipe selfie 256x256 and Meet 144x256 from ``../shared/teachers``, never shipped) their own
fixed inputs. Calls are interleaved round by round so a busy machine slows all alike; the figures are the
median CPU ms of one call (thread CPU time, one intra-op thread, no spinning), and each model's ratio to
MediaPipe selfie's.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from bgswap.inference.model_meta import ModelMeta
from bgswap.inference.resources import models_dir

TEACHERS = Path(__file__).resolve().parent.parent.parent / "shared" / "teachers"
PEERS = {"MediaPipe selfie": ("mediapipe_selfie_256x256.onnx", (1, 256, 256, 3)),
         "Meet": ("meet_landscape_144x256.onnx", (1, 144, 256, 3))}


def session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def candidates(model_dirs: list[Path], frame_hw: tuple[int, int]) -> dict[str, tuple]:
    """name -> (session, feed) for each model's fp32 and int8 files and the peers."""
    rng = np.random.default_rng(0)
    out = {}
    for d in model_dirs:
        meta = ModelMeta.load(d)
        h, w = meta.input_shape(frame_hw)
        x = rng.standard_normal((1, 3, h, w)).astype(np.float32)
        for label, name in (("fp32", "model.onnx"), ("int8", meta.int8_onnx)):
            if name and (d / name).is_file():
                out[f"{meta.name} v{meta.version} {label} {w}x{h}"] = (session(d / name), {meta.input_name: x})
    for label, (name, shape) in PEERS.items():
        if (TEACHERS / name).is_file():
            s = session(TEACHERS / name)
            out[f"{label} {shape[2]}x{shape[1]}"] = (s, {s.get_inputs()[0].name: rng.random(shape, np.float32)})
    return out


def measure(models: dict[str, tuple], rounds: int, calls: int = 10) -> dict[str, float]:
    """Median thread-CPU ms of one call per model, calls interleaved model by model each round."""
    times: dict[str, list[float]] = {k: [] for k in models}
    for sess, feed in models.values():         # warm up
        for _ in range(3):
            sess.run(None, feed)
    for _ in range(rounds):
        for name, (sess, feed) in models.items():
            t0 = time.thread_time()
            for _ in range(calls):
                sess.run(None, feed)
            times[name].append((time.thread_time() - t0) * 1000 / calls)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", action="append", help="an exported model folder (repeatable; default: "
                    "every folder in the shipped models/)")
    ap.add_argument("--frame", default="640x480", help="the camera frame the input is shaped for, WxH")
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    w, h = (int(v) for v in args.frame.lower().split("x"))
    dirs = [Path(d) for d in args.model_dir] if args.model_dir else \
        sorted(p for p in models_dir().iterdir() if (p / "meta.json").is_file())
    results = measure(candidates(dirs, (h, w)), args.rounds)
    ref = next((v for k, v in results.items() if k.startswith("MediaPipe")), None)
    print(f"one ONNX Runtime call, 1 thread, frame {w}x{h}, median of {args.rounds} rounds of 10 calls")
    for name, ms in results.items():
        ratio = f"  {ms / ref:.2f}x MediaPipe selfie" if ref else ""
        print(f"  {name:48s} {ms:6.2f} CPU ms{ratio}")


if __name__ == "__main__":
    main()
