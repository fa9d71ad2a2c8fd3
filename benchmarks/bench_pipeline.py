"""Benchmark the segmenter and the whole pipeline on a 640x480 source; prints numbers.

    python benchmarks/bench_pipeline.py [--seconds 10] [--input-size 256] [--threads 2]

Targets on a 2-core machine: model at 256x256 within 25 ms; everything else in the
pipeline (pre-processing, refinement, compositing, sinks) at most 8 ms per frame;
30 fps output with asynchronous segmentation.
"""
from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

from app.engine import Engine
from app.settings import EngineSettings  # noqa: E402
from app.sources import CaptureRequest, DemoSource  # noqa: E402
from inference import Segmenter  # noqa: E402
from inference.backends import PRECISIONS  # noqa: E402
from inference.compose import Compositor, parse_background  # noqa: E402
from inference.resources import assets_dir  # noqa: E402
from inference.refine import MaskRefiner  # noqa: E402


def bench_stages(frame, input_size, threads, precision="auto", n=100) -> dict:
    seg = Segmenter(input_size=input_size, threads=threads, precision=precision)
    ref, comp = MaskRefiner(), Compositor()
    bgs = {k: parse_background(k) for k in ("blur", "color:#336699")}
    bgs["image"] = parse_background(str(assets_dir() / "backgrounds" / "aurora.jpg"))
    for _ in range(10):
        seg.predict_lowres(frame)
    t_pre, t_model, t_ref = [], [], []
    t_comp = {k: [] for k in bgs}
    for i in range(n):
        t0 = time.perf_counter()
        x = seg.preprocess(frame)
        t1 = time.perf_counter()
        prob = seg.backend.run(x)[0, 0]
        t2 = time.perf_counter()
        alpha = ref(prob, frame)
        t3 = time.perf_counter()
        t_pre.append(t1 - t0), t_model.append(t2 - t1), t_ref.append(t3 - t2)
        for k, bg in bgs.items():
            t = time.perf_counter()
            comp(frame, alpha, bg)
            t_comp[k].append(time.perf_counter() - t)
    ms = lambda v: 1000 * float(np.median(v))  # noqa: E731
    out = {"preprocess": ms(t_pre), "model": ms(t_model), "refine": ms(t_ref)}
    out.update({f"composite_{k}": ms(v) for k, v in t_comp.items()})
    return out


def bench_pipeline(seconds: float, input_size, threads, async_seg: bool, precision: str = "auto") -> dict:
    s = EngineSettings(source="demo", background="blur", input_size=input_size, threads=threads,
                       async_segmentation=async_seg, precision=precision)
    engine = Engine(s)
    engine.start(DemoSource(CaptureRequest(640, 480, 30)))
    engine.wait_for_frames(30, timeout=30)
    n0, c0, t0 = engine.stats.frames_out, time.process_time(), time.monotonic()
    time.sleep(seconds)
    n1, c1, t1 = engine.stats.frames_out, time.process_time(), time.monotonic()
    snap = engine.snapshot()
    engine.stop()
    frames = n1 - n0
    return {"fps_out": frames / (t1 - t0), "fps_model": snap.fps_model, "cpu_ms_per_frame": 1000 * (c1 - c0) / max(1, frames),
            "latency_ms": snap.latency_ms, "stage_ms": snap.stage_ms, "dropped": snap.dropped}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--input-size", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="auto", choices=PRECISIONS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    src = DemoSource(CaptureRequest(640, 480, 30), realtime=False)
    src.open()
    frame = src.frame_at(10)
    st = bench_stages(frame, args.input_size, args.threads, args.precision)
    print(f"per-stage median ms at 640x480 (model input {args.input_size or 'default'}, {args.threads} threads, "
          f"precision {args.precision}):")
    for k, v in st.items():
        print(f"  {k:20s} {v:7.2f}")
    overhead = st["preprocess"] + st["refine"] + max(v for k, v in st.items() if k.startswith("composite"))
    print(f"  {'non-model total':20s} {overhead:7.2f}   (target <= 8 ms)")
    print(f"  {'model':20s} {st['model']:7.2f}   (target <= 25 ms)")
    for async_seg in (True, False):
        r = bench_pipeline(args.seconds, args.input_size, args.threads, async_seg, args.precision)
        print(f"pipeline {'async' if async_seg else 'sync '}: {r['fps_out']:.1f} fps out (target 30), "
              f"model {r['fps_model']:.1f}/s, {r['cpu_ms_per_frame']:.1f} CPU ms/frame, "
              f"latency {r['latency_ms']:.0f} ms, dropped {r['dropped']}, stages "
              + " ".join(f"{k} {v:.1f}" for k, v in r["stage_ms"].items()))
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
