"""Benchmark the segmenter's stages and the whole pipeline per preset on a 640x480 demo source at
30 fps; prints numbers.

    python benchmarks/bench_pipeline.py [--seconds 10] [--busy-core] [--preset balanced] [--model-dir DIR]
    python benchmarks/bench_pipeline.py --peer [--source FILE]     # per-frame loops: ours against MediaPipe's

``--peer`` runs, on the same frames (the demo clip, or ``--source FILE``'s first 150), at 640x480 and
1280x720, one thread, the model on every frame: our per-frame loop (``Segmenter.predict_lowres`` +
``MaskRefiner`` + ``Compositor``, Balanced's settings) and the loop Linux-Fake-Background-Webcam runs
on MediaPipe selfie (segment at 256, 7x7 blur, threshold, dilate, ``blendLinear``), with
``../shared/teachers/mediapipe_selfie_256x256.onnx`` as a benchmark reference only; it prints the
CPU ms per frame of each and their ratio.

For each preset (default: all three) and for an idle machine and, with ``--busy-core``, one with a
helper process keeping a core busy for the run: output fps, mask updates per second (and the frames
the rate cap allowed that were still, so no run was needed), CPU ms per output frame (this process's
CPU time over frames out), latency and dropped frames, and the worst gap between output frames (a
burst of drops shows as a long gap). Then the cost of idling (nobody reads the virtual camera) and
the time from a reader appearing to the first composited frame. Balanced also runs with every
frame counted as moved (someone who never sits still: the model at its full 15/s).

Targets (issue 24), Balanced, 2 cores: <= 20 CPU ms per output frame, 30 fps out, >= 15 masks/s,
latency < 60 ms; with a busy core: 30 fps out, >= 12 masks/s, no bursts of drops. Idle: < 5 % of
one core.
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bgswap.app.engine import Engine  # noqa: E402
from bgswap.app.settings import EngineSettings, Settings  # noqa: E402
from bgswap.app.settings.convert import set_path  # noqa: E402
from bgswap.app.settings.presets import PRESET_NAMES, preset_values  # noqa: E402
from bgswap.app.sinks import CallbackSink, VirtualCameraSink  # noqa: E402
from bgswap.app.sources import CaptureRequest, DemoSource  # noqa: E402
from bgswap.inference import Segmenter  # noqa: E402
from bgswap.inference.compose import Compositor, parse_background  # noqa: E402
from bgswap.inference.refine import MaskRefiner, RefineSettings  # noqa: E402


def preset_settings(name: str, model_dir: str | None = None) -> EngineSettings:
    """A preset's engine settings on a blur background; ``model_dir`` None is the shipped model."""
    s = Settings()
    s.engine.model_dir = model_dir
    for path, value in preset_values(name).items():
        set_path(s, path, value)
    s.engine.background = "blur"
    return s.engine


def busy_loop() -> None:
    while True:
        sum(i * i for i in range(10000))


def bench_stages(frame: np.ndarray, s: EngineSettings, n: int = 60) -> dict:
    seg = Segmenter(s.model_dir, input_size=s.input_size, threads=s.threads, passes=s.passes)
    ref, comp, bg = MaskRefiner(RefineSettings(colour_edges=s.refine.colour_edges)), Compositor(), parse_background("blur")
    for _ in range(5):
        seg.predict_lowres(frame)
    cpu = {"model": 0.0, "refine": 0.0, "composite": 0.0}
    for _ in range(n):
        c0 = time.process_time()
        prob = seg.predict_lowres(frame)
        c1 = time.process_time()
        alpha = ref(prob, frame)
        c2 = time.process_time()
        comp(frame, alpha, bg)
        c3 = time.process_time()
        cpu["model"] += c1 - c0
        cpu["refine"] += c2 - c1
        cpu["composite"] += c3 - c2
    return {k: 1000 * v / n for k, v in cpu.items()}


def bench_pipeline(s: EngineSettings, seconds: float, always_moving: bool = False) -> dict:
    """``always_moving``: every frame counts as moved (the schedule's still check is off), as for
    someone who never sits still: the model runs at the preset's full rate."""
    engine = Engine(s)
    if always_moving:
        engine.schedule.still_level = -1.0
    gaps: list[float] = []
    last = [0.0]

    def on_frame(_f):
        now = time.monotonic()
        if last[0]:
            gaps.append(now - last[0])
        last[0] = now

    engine.add_sink(CallbackSink(on_frame))
    engine.start(DemoSource(CaptureRequest(640, 480, 30)))
    engine.wait_for_frames(30, timeout=30)
    time.sleep(1.0)
    gaps.clear()
    model_runs = [0]
    real = engine.segmenter.predict_lowres
    engine.segmenter.predict_lowres = lambda img: (model_runs.__setitem__(0, model_runs[0] + 1), real(img))[1]
    skips0 = engine.schedule.still_skips
    n0, c0, t0 = engine.stats.frames_out, time.process_time(), time.monotonic()
    time.sleep(seconds)
    n1, c1, t1 = engine.stats.frames_out, time.process_time(), time.monotonic()
    skips = engine.schedule.still_skips - skips0
    snap = engine.snapshot()
    engine.stop()
    frames = n1 - n0
    return {"fps_out": frames / (t1 - t0), "masks_per_s": model_runs[0] / (t1 - t0),
            "still_skips_per_s": skips / (t1 - t0),
            "cpu_ms_per_frame": 1000 * (c1 - c0) / max(1, frames), "latency_ms": snap.latency_ms,
            "dropped": snap.dropped, "worst_gap_ms": 1000 * max(gaps, default=0.0), "stage_ms": snap.stage_ms}


def pipeline_line(label: str, r: dict) -> str:
    """One printed line of ``bench_pipeline``'s figures."""
    return (f"[{label}] out {r['fps_out']:4.1f} fps, masks {r['masks_per_s']:4.1f}/s "
            f"({r['still_skips_per_s']:.1f} frames/s still: no run needed), "
            f"CPU {r['cpu_ms_per_frame']:5.1f} ms/frame, latency {r['latency_ms']:3.0f} ms, "
            f"dropped {r['dropped']}, worst gap {r['worst_gap_ms']:.0f} ms | stages "
            + " ".join(f"{k} {v:.1f}" for k, v in r["stage_ms"].items()))


def bench_idle(seconds: float, model_dir: str | None = None) -> dict:
    """Idle cost with a virtual camera nobody reads (a temporary file stands in for the device), and
    the time from a reader opening it to the first frame composited after that."""
    import pyvirtualcam
    import subprocess

    class NullBackend:
        def __init__(self, *, width, height, fps, fourcc, device=None, **kw):
            pass

        def device(self):
            return "null"

        def send(self, frame):
            pass

        def close(self):
            pass

    pyvirtualcam.register_backend("null", NullBackend)
    node = Path(tempfile.mkdtemp()) / "video-bench"
    node.write_bytes(b"")
    engine = Engine(preset_settings("balanced", model_dir))
    engine.add_sink(VirtualCameraSink(backend="null", reader_node=node))
    engine.start(DemoSource(CaptureRequest(640, 480, 30)))
    time.sleep(2.0)
    c0, t0 = time.process_time(), time.monotonic()
    time.sleep(seconds)
    idle_cpu = (time.process_time() - c0) / (time.monotonic() - t0)
    idle = engine.snapshot().idle
    out = engine.stats.frames_out
    reader = subprocess.Popen([sys.executable, "-c", f"import time; f = open({str(node)!r}); time.sleep(30)"])
    while engine.snapshot().idle and reader.poll() is None:
        time.sleep(0.001)
    t_seen = time.monotonic()
    engine.wait_for_frames(out + 1, timeout=10)
    resume_ms = 1000 * (time.monotonic() - t_seen)
    reader.kill()
    engine.stop()
    return {"idle": idle, "idle_core_percent": 100 * idle_cpu, "resume_ms": resume_ms}


PEER_MODEL = Path(__file__).resolve().parent.parent.parent / "shared" / "teachers" / "mediapipe_selfie_256x256.onnx"


def clip_frames(source: str | None, width: int, height: int, n: int = 150) -> list[np.ndarray]:
    """``n`` frames at ``width`` x ``height``: the demo clip's, or a video file's (covering the size)."""
    import cv2

    from bgswap.inference.compose import cover_fit

    if source is None:
        src = DemoSource(CaptureRequest(width, height, 30), realtime=False)
        src.open()
        return [src.frame_at(i) for i in range(n)]
    cap = cv2.VideoCapture(source)
    frames = []
    while len(frames) < n:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cover_fit(f, width, height))
    cap.release()
    if not frames:
        raise SystemExit(f"{source}: no frames could be read")
    return frames


def peer_loop(frames: list[np.ndarray], bg: np.ndarray) -> float:
    """CPU ms per frame of Linux-Fake-Background-Webcam's loop on MediaPipe selfie (one thread)."""
    import cv2
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(PEER_MODEL), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    kernel = np.ones((5, 5), np.uint8)

    def one(frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        x = cv2.cvtColor(cv2.resize(frame, (256, 256), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        m = sess.run(None, {name: (x.astype(np.float32) / 255.0)[None]})[0][0, :, :, 0]
        m = cv2.blur(m, (7, 7))
        m = cv2.dilate((m > 0.75).astype(np.uint8), kernel).astype(np.float32)
        m = cv2.blur(cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR), (7, 7))
        return cv2.blendLinear(frame, bg, m, 1.0 - m)

    return _cpu_ms_per_frame(one, frames)


def our_loop(frames: list[np.ndarray], bg: np.ndarray, model_dir: str | None) -> float:
    """CPU ms per frame of our loop with Balanced's settings, the model on every frame."""
    from bgswap.inference.compose import ImageBackground

    s = preset_settings("balanced", model_dir)
    seg = Segmenter(s.model_dir, input_size=s.input_size, threads=1, passes=s.passes)
    refiner, comp = MaskRefiner(s.refine), Compositor()
    background = ImageBackground(image=bg, label="bench", fit=(bg.shape[1], bg.shape[0]))
    return _cpu_ms_per_frame(lambda f: comp(f, refiner(seg.predict_lowres(f), f), background), frames)


def _cpu_ms_per_frame(fn, frames: list[np.ndarray]) -> float:
    for f in frames[:10]:
        fn(f)
    c = time.process_time()
    for f in frames:
        fn(f)
    return 1000 * (time.process_time() - c) / len(frames)


def bench_peer(source: str | None, model_dir: str | None) -> None:
    import cv2

    from bgswap.inference.compose import cover_fit
    from bgswap.inference.resources import bundled_backgrounds

    if not PEER_MODEL.is_file():
        print(f"{PEER_MODEL} not found: no peer figures (it is a benchmark reference in ../shared, never shipped)")
        return
    cv2.setNumThreads(1)
    picture = cv2.imread(str(bundled_backgrounds()[0]))
    print(f"per-frame loops, 1 thread, the model on every frame, {source or 'the demo clip'}, image background:")
    for w, h in ((640, 480), (1280, 720)):
        frames = clip_frames(source, w, h)
        bg = cover_fit(picture, w, h)
        ours, peer = our_loop(frames, bg, model_dir), peer_loop(frames, bg)
        print(f"  {w}x{h}: ours {ours:5.1f} CPU ms/frame, MediaPipe pipeline {peer:5.1f}, ratio {ours / peer:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--preset", choices=PRESET_NAMES, help="only this preset (default: all)")
    ap.add_argument("--busy-core", action="store_true", help="also measure with one core kept busy")
    ap.add_argument("--model-dir", help="a model folder other than the shipped one (e.g. a fresh export)")
    ap.add_argument("--peer", action="store_true", help="only the per-frame loops: ours against MediaPipe's")
    ap.add_argument("--source", help="with --peer: a video file instead of the demo clip")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.peer:
        bench_peer(args.source, args.model_dir)
        return
    src = DemoSource(CaptureRequest(640, 480, 30), realtime=False)
    src.open()
    frame = src.frame_at(10)
    presets = [args.preset] if args.preset else list(PRESET_NAMES)
    print(f"{os.cpu_count()} cores; 640x480 demo at 30 fps, blur background; {args.seconds:g} s per run")
    for name in presets:
        st = bench_stages(frame, preset_settings(name, args.model_dir))
        print(f"[{name}] CPU ms per call: " + ", ".join(f"{k} {v:.1f}" for k, v in st.items()))
    loads = ["idle"] + (["busy core"] if args.busy_core else [])
    for load in loads:
        helper = None
        if load == "busy core":
            helper = multiprocessing.Process(target=busy_loop, daemon=True)
            helper.start()
        try:
            for name in presets:
                r = bench_pipeline(preset_settings(name, args.model_dir), args.seconds)
                print(pipeline_line(f"{name:8s} {load:9s}", r))
            if "balanced" in presets:
                r = bench_pipeline(preset_settings("balanced", args.model_dir), args.seconds, always_moving=True)
                print(pipeline_line(f"balanced {load:9s}", r).replace("] out", "] always moving: out", 1))
        finally:
            if helper is not None:
                helper.terminate()
    r = bench_idle(args.seconds, args.model_dir)
    print(f"[nobody watching] idle {r['idle']}: {r['idle_core_percent']:.1f} % of one core (target < 5 %); "
          f"a reader appears -> first composited frame {r['resume_ms']:.0f} ms")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
