"""Benchmark the pipeline per preset on a moving clip at 30 fps, at 640x480 and 1280x720, beside the
MediaPipe-selfie pipeline other apps run; prints numbers.

    python benchmarks/bench_pipeline.py [--source demo:walk|demo|FILE] [--resolution 1280x720 ...]
                                        [--preset balanced] [--busy-core] [--peer] [--edge-colours]
                                        [--seconds 10] [--no-idle] [--model-dir DIR]

The source (default ``demo:walk``: the demo photo's person walks across the room, sits, turns their
head and leans in) is rendered or decoded into memory first (the first 180 frames, played forwards
and back), so neither its rendering nor a video decoder is counted: only the engine's own work.

Per resolution (default: both):
- per preset, CPU ms per call of each stage (model, refine, composite) on one frame;
- per preset (default: all three; Balanced also with every frame counted as moved, so the model
  runs at its full 15/s), idle and, with ``--busy-core``, with a helper process keeping a
  core busy: output fps, mask updates per second (and the frames that were still, so no run was
  needed), CPU ms per output frame (this process's CPU time over frames out), latency, dropped
  frames and the worst gap between output frames (a burst of drops shows as a long gap);
- with ``--peer``: on the same frames, one thread, the model on every frame, our per-frame loop
  (``Segmenter.predict_lowres`` + ``MaskRefiner`` + ``Compositor``, Balanced's settings) and the loop
  Linux-Fake-Background-Webcam runs on MediaPipe selfie (segment at 256, 7x7 blur, threshold,
  dilate, ``blendLinear``), with ``../shared/teachers/mediapipe_selfie_256x256.onnx`` as a benchmark
  reference only; then Balanced's CPU ms per frame in the app against that loop, and the ratio;
- with ``--edge-colours``: the compositor's CPU ms per call plain and with edge colour
  decontamination and light wrap 0.3 (best of three), and Balanced (always moving) again with both,
  and what they add per frame.
Last, at 640x480, the cost of idling (nobody reads the virtual camera) and the time from a reader
appearing to the first composited frame.

Targets (issue 36), Balanced on a moving picture, 2 cores: 30 fps out, >= 15 masks/s, no drops,
latency < 50 ms, and CPU per frame at most the MediaPipe pipeline's, at both sizes, idle and with a
busy core. Idle: < 5 % of one core.
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
from bgswap.app.sources import CaptureRequest, DemoSource, RenderedClip, open_source  # noqa: E402
from bgswap.inference import Segmenter  # noqa: E402
from bgswap.inference.backgrounds import parse_background  # noqa: E402
from bgswap.inference.compose import Compositor  # noqa: E402
from bgswap.inference.refine import MaskRefiner  # noqa: E402


EDGE_COLOURS = {"engine.refine.decontaminate": True, "engine.refine.light_wrap": 0.3}


def preset_settings(name: str, model_dir: str | None = None, size: tuple[int, int] = (640, 480),
                    edge_colours: bool = False, extra: dict | None = None, background: str = "blur") -> EngineSettings:
    """A preset's engine settings on ``background`` (blur) at ``size``; ``model_dir`` None is the shipped
    model; ``edge_colours``: with decontamination and light wrap 0.3; ``extra``: more dotted settings."""
    s = Settings()
    s.engine.model_dir = model_dir
    for path, value in {**preset_values(name), **(EDGE_COLOURS if edge_colours else {}), **(extra or {})}.items():
        set_path(s, path, value)
    s.engine.background = background
    s.engine.width, s.engine.height = size
    return s.engine


def busy_loop() -> None:
    while True:
        sum(i * i for i in range(10000))


CLIP_FRAMES = 180
CLIP_BYTES = 1.5e9           # at most this much of the clip is held (fewer frames above 1280x720)


def clip_frames(source: str, width: int, height: int, n: int = CLIP_FRAMES) -> list[np.ndarray]:
    """The first ``n`` frames of ``source`` (``demo``, ``demo:walk`` or a video file) at ``width`` x
    ``height`` (a file's frames are cover-fitted to it)."""
    import cv2

    from bgswap.inference.backgrounds import cover_fit

    n = max(2, min(n, int(CLIP_BYTES // (width * height * 3))))
    if source in ("demo", "demo:walk"):
        src = open_source(source, CaptureRequest(width, height, 30), realtime=False)
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


class MemorySource(RenderedClip):
    """Frames held in memory, played forwards and back at ``fps`` like a camera (nothing decoded)."""

    def __init__(self, frames: list[np.ndarray], fps: float = 30.0):
        super().__init__("clip in memory", fps)
        self.frames = frames

    def open(self) -> None:
        self._i = 0

    def _opened(self) -> bool:
        return True

    def frame_at(self, i: int) -> np.ndarray:
        n = len(self.frames)
        k = i % (2 * n - 2) if n > 1 else 0
        return self.frames[k if k < n else 2 * n - 2 - k]


def bench_stages(frame: np.ndarray, s: EngineSettings, n: int = 60) -> dict:
    """CPU ms per call of each stage on one frame, with ``s``'s settings (one model thread)."""
    seg = Segmenter(s.model_dir, input_size=s.input_size, threads=1, passes=s.passes)
    ref, comp, bg = MaskRefiner(s.refine), Compositor(s.refine), parse_background("blur")
    for _ in range(5):
        comp(frame, ref.matte(seg.predict_lowres(frame), frame), bg)
    cpu = {"model": 0.0, "refine": 0.0, "composite": 0.0}
    for _ in range(n):
        c0 = time.process_time()
        prob = seg.predict_lowres(frame)
        c1 = time.process_time()
        alpha = ref.matte(prob, frame)          # as the engine does: the matte at the working size
        c2 = time.process_time()
        comp(frame, alpha, bg)
        c3 = time.process_time()
        cpu["model"] += c1 - c0
        cpu["refine"] += c2 - c1
        cpu["composite"] += c3 - c2
    return {k: 1000 * v / n for k, v in cpu.items()}


def bench_pipeline(s: EngineSettings, frames: list[np.ndarray], seconds: float, always_moving: bool = False) -> dict:
    """The engine with settings ``s`` on ``frames`` played at 30 fps for ``seconds``. ``always_moving``:
    every frame counts as moved (the schedule's still check is off), as for someone who never sits
    still: the model runs at the preset's full rate."""
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
    engine.start(MemorySource(frames))
    engine.wait_for_frames(30, timeout=30)
    time.sleep(1.0)
    gaps.clear()
    model_runs = [0]
    real = engine.segmenter.predict_lowres
    engine.segmenter.predict_lowres = lambda img: (model_runs.__setitem__(0, model_runs[0] + 1), real(img))[1]
    skips0, dropped0 = engine.schedule.still_skips, engine.snapshot().dropped
    n0, c0, t0 = engine.stats.frames_out, time.process_time(), time.monotonic()
    time.sleep(seconds)
    n1, c1, t1 = engine.stats.frames_out, time.process_time(), time.monotonic()
    skips = engine.schedule.still_skips - skips0
    snap = engine.snapshot()
    engine.stop()
    frames_out = n1 - n0
    return {"fps_out": frames_out / (t1 - t0), "masks_per_s": model_runs[0] / (t1 - t0),
            "still_skips_per_s": skips / (t1 - t0),
            "cpu_ms_per_frame": 1000 * (c1 - c0) / max(1, frames_out), "latency_ms": snap.latency_ms,
            "dropped": snap.dropped - dropped0, "worst_gap_ms": 1000 * max(gaps, default=0.0),
            "stage_ms": snap.stage_ms}


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
    from bgswap.inference.backgrounds import ImageBackground

    s = preset_settings("balanced", model_dir, (bg.shape[1], bg.shape[0]))
    seg = Segmenter(s.model_dir, input_size=s.input_size, threads=1, passes=s.passes)
    refiner, comp = MaskRefiner(s.refine), Compositor(s.refine)
    background = ImageBackground(image=bg, label="bench", fit=(bg.shape[1], bg.shape[0]))
    return _cpu_ms_per_frame(lambda f: comp(f, refiner.matte(seg.predict_lowres(f), f), background), frames)


def _cpu_ms_per_frame(fn, frames: list[np.ndarray]) -> float:
    for f in frames[:10]:
        fn(f)
    c = time.process_time()
    for f in frames:
        fn(f)
    return 1000 * (time.process_time() - c) / len(frames)


def bench_peer(frames: list[np.ndarray], model_dir: str | None) -> tuple[float, float] | None:
    """(ours, peer): CPU ms per frame of the two per-frame loops on ``frames``, image background."""
    import cv2

    from bgswap.inference.backgrounds import cover_fit
    from bgswap.inference.resources import bundled_backgrounds

    if not PEER_MODEL.is_file():
        print(f"{PEER_MODEL} not found: no peer figures (it is a benchmark reference in ../shared, never shipped)")
        return None
    h, w = frames[0].shape[:2]
    bg = cover_fit(cv2.imread(str(bundled_backgrounds()[0])), w, h)
    return our_loop(frames, bg, model_dir), peer_loop(frames, bg)


def parse_resolution(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"resolution {text!r} must be WIDTHxHEIGHT, e.g. 1280x720") from None
    if not (64 <= w <= 3840 and 64 <= h <= 2160):
        raise argparse.ArgumentTypeError(f"resolution {text!r} must be between 64x64 and 3840x2160")
    return w, h


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--source", default="demo:walk", help="demo:walk (default), demo, or a video file")
    ap.add_argument("--resolution", type=parse_resolution, action="append",
                    help="WxH; repeat for several (default: 640x480 and 1280x720)")
    ap.add_argument("--preset", choices=PRESET_NAMES, help="only this preset (default: all)")
    ap.add_argument("--busy-core", action="store_true", help="also measure with one core kept busy")
    ap.add_argument("--peer", action="store_true", help="also the MediaPipe-selfie pipeline on the same frames")
    ap.add_argument("--no-idle", action="store_true", help="skip the idle (nobody watching) measurement")
    ap.add_argument("--edge-colours", action="store_true",
                    help="also Balanced (always moving) with decontamination and light wrap 0.3")
    ap.add_argument("--model-dir", help="a model folder other than the shipped one (e.g. a fresh export)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import cv2

    cv2.setNumThreads(1)                     # as the engine runs (each Engine sets it too)
    presets = [args.preset] if args.preset else list(PRESET_NAMES)
    loads = ["idle"] + (["busy core"] if args.busy_core else [])
    print(f"{os.cpu_count()} cores; source {args.source} at 30 fps, blur background; {args.seconds:g} s per run")
    for w, h in args.resolution or [(640, 480), (1280, 720)]:
        frames = clip_frames(args.source, w, h)
        print(f"--- {w}x{h} ({len(frames)} frames in memory, played forwards and back)")
        for name in presets:
            st = bench_stages(frames[len(frames) // 2], preset_settings(name, args.model_dir, (w, h)))
            print(f"[{name}] CPU ms per call: " + ", ".join(f"{k} {v:.1f}" for k, v in st.items()))
            if args.edge_colours and name == "balanced":
                # the compositor alone: plain, decontaminated, both edge steps, alternating (less drift between them)
                frame = frames[len(frames) // 2]
                ms: dict[str, list[float]] = {}
                for _ in range(3):
                    for label, extra in (("plain", {}), ("decontaminated", {"engine.refine.decontaminate": True}),
                                         ("both", EDGE_COLOURS)):
                        ms.setdefault(label, []).append(bench_stages(frame, preset_settings(
                            name, args.model_dir, (w, h), extra=extra))["composite"])
                best = {label: min(v) for label, v in ms.items()}
                print(f"[edge colours] composite CPU ms per call (best of 3 x 60): plain {best['plain']:.2f}, "
                      f"decontaminated {best['decontaminated']:.2f} ({best['decontaminated'] - best['plain']:+.2f}), "
                      f"decontaminated + light wrap 0.3 {best['both']:.2f} ({best['both'] - best['plain']:+.2f})")
        balanced = {}
        for load in loads:
            helper = None
            if load == "busy core":
                helper = multiprocessing.Process(target=busy_loop, daemon=True)
                helper.start()
            try:
                for name in presets:
                    r = bench_pipeline(preset_settings(name, args.model_dir, (w, h)), frames, args.seconds)
                    print(pipeline_line(f"{name:8s} {load:9s}", r))
                    if name == "balanced":
                        balanced[load] = r["cpu_ms_per_frame"]
                        r = bench_pipeline(preset_settings(name, args.model_dir, (w, h)), frames, args.seconds,
                                           always_moving=True)
                        print(pipeline_line(f"{name:8s} {load:9s}", r).replace("] out", "] always moving: out", 1))
                        balanced[f"{load}, always moving"] = r["cpu_ms_per_frame"]
                        if args.edge_colours:
                            e = bench_pipeline(preset_settings(name, args.model_dir, (w, h), edge_colours=True),
                                               frames, args.seconds, always_moving=True)
                            print(pipeline_line(f"{name:8s} {load:9s}", e).replace(
                                "] out", "] always moving, decontaminated + light wrap 0.3: out", 1))
                            print(f"[edge colours] decontamination + light wrap cost "
                                  f"{e['cpu_ms_per_frame'] - r['cpu_ms_per_frame']:+.1f} CPU ms/frame ({load})")
            finally:
                if helper is not None:
                    helper.terminate()
        if args.peer:
            loops = bench_peer(frames, args.model_dir)
            if loops:
                ours, peer = loops
                print(f"[peer] per-frame loops, 1 thread, model every frame, image background: ours {ours:.1f} "
                      f"CPU ms/frame, MediaPipe pipeline {peer:.1f}, ratio {ours / peer:.2f}")
                for load, ms in balanced.items():
                    print(f"[peer] Balanced in the app ({load}, blur) {ms:.1f} CPU ms/frame against the MediaPipe "
                          f"pipeline's {peer:.1f} (on a picture): ratio {ms / peer:.2f}")
                from bgswap.inference.resources import bundled_backgrounds

                same = preset_settings("balanced", args.model_dir, (w, h), background=str(bundled_backgrounds()[0]))
                for moving in (False, True):
                    r = bench_pipeline(same, frames, args.seconds, always_moving=moving)
                    print(pipeline_line("balanced same picture" + (", always moving" if moving else ""), r))
                    print(f"[peer] Balanced in the app on the peer's own background picture"
                          f"{' (always moving)' if moving else ''}: {r['cpu_ms_per_frame']:.1f} CPU ms/frame against "
                          f"{peer:.1f}: ratio {r['cpu_ms_per_frame'] / peer:.2f}")
        del frames
    if not args.no_idle:
        r = bench_idle(args.seconds, args.model_dir)
        print(f"[nobody watching] idle {r['idle']}: {r['idle_core_percent']:.1f} % of one core (target < 5 %); "
              f"a reader appears -> first composited frame {r['resume_ms']:.0f} ms")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
