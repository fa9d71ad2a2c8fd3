"""The trail: how far the app's output mask lags a moving person, on a clip whose every true mask is known.

    python benchmarks/bench_trail.py                                   # Balanced, 640x480 and 1280x720
    python benchmarks/bench_trail.py --preset quality --resolution 1280x720 --seconds 12
    python benchmarks/bench_trail.py --async                           # the mask made beside the frames

``demo:walk`` is drawn from a known person matte, so each frame's true mask is at hand
(``WalkingDemoSource.person_alpha_at``). The engine runs the clip in real time at 30 fps with the
preset's settings; every output frame's matte is scored (person IoU at 0.5) against the true mask of
the frame it was composited on. Beside it, the same model and refinement run on every frame in turn
(each frame composited with the mask made from it): the gap between the two is the trail.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from bgswap.app.engine import Engine
from bgswap.app.model_holder import make_segmenter
from bgswap.app.settings.schema import EngineSettings
from bgswap.app.settings.convert import engine_with
from bgswap.app.settings.presets import preset_values
from bgswap.app.sources import CaptureRequest
from bgswap.app.walking_demo import WalkingDemoSource
from bgswap.inference import MaskRefiner


def person_iou(matte, truth: np.ndarray) -> float:
    """Person IoU of a refined matte (``inference.refine.Matte``: where its alpha is at least 0.5) against
    a true alpha."""
    a, b = matte.person_mask() > 0, truth >= 0.5
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


class ShortWalk(WalkingDemoSource):
    """The walking demo, its first ``frames`` frames once, in real time."""

    def __init__(self, req: CaptureRequest, frames: int):
        super().__init__(req, realtime=True)
        self.frames = frames

    def read(self) -> np.ndarray | None:
        if self._i >= self.frames:
            time.sleep(0.05)
            return None
        return super().read()


def settings_for(preset: str, sync: bool, model_dir: str | None) -> EngineSettings:
    s = engine_with(EngineSettings(model_dir=model_dir, mirror=False), preset_values(preset))
    if sync is not None:
        s.async_segmentation = not sync
    return s


def app_scores(s: EngineSettings, width: int, height: int, frames: int) -> tuple[dict[int, float], dict]:
    """Each output frame's person IoU against its own true mask, by frame index; and the run's figures."""
    src = ShortWalk(CaptureRequest(width, height, 30), frames)
    src.open()
    engine = Engine(s)
    scored: dict[int, float] = {}
    current = [-1]
    real_compose, real_process = engine.compositor, engine._process

    def process(item):                      # the capture thread numbers frames from 1 in read order
        current[0] = item.seq - 1
        real_process(item)

    def compose(frame, matte, background):
        scored[current[0]] = person_iou(matte, src.person_alpha_at(current[0]))
        return real_compose(frame, matte, background)

    engine._process, engine.compositor = process, compose
    runs = [0]
    t0 = time.monotonic()
    engine.start(src)
    predict = engine.segmenter.predict_lowres
    engine.segmenter.predict_lowres = lambda img: (runs.__setitem__(0, runs[0] + 1), predict(img))[1]
    while src._i < frames and time.monotonic() - t0 < frames / 30 + 30:
        time.sleep(0.1)
    time.sleep(0.5)
    snap = engine.snapshot()
    engine.stop()
    return scored, {"masks_per_s": runs[0] / (frames / 30), "latency_ms": snap.latency_ms,
                    "dropped": snap.dropped, "frames_out": len(scored)}


def every_frame_scores(s: EngineSettings, width: int, height: int, indices: list[int]) -> dict[int, float]:
    """The same model and refinement on every frame in turn, each frame with its own mask."""
    src = WalkingDemoSource(CaptureRequest(width, height, 30), realtime=False)
    src.open()
    seg = make_segmenter(s)                    # as the engine builds it
    refiner = MaskRefiner(s.refine)
    out = {}
    wanted = set(indices)
    for i in range(max(indices) + 1):
        frame = src.frame_at(i)
        matte = refiner.matte(seg.predict_lowres(frame), frame)
        if i in wanted:
            out[i] = person_iou(matte, src.person_alpha_at(i))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="balanced")
    ap.add_argument("--resolution", action="append", help="WxH (repeatable; default 640x480 and 1280x720)")
    ap.add_argument("--seconds", type=float, default=12.0, help="how much of the clip (12 s: all of it once)")
    ap.add_argument("--model-dir", default=None)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--sync", dest="sync", action="store_true", default=None, help="force --sync")
    mode.add_argument("--async", dest="sync", action="store_false", help="force the mask beside the frames")
    args = ap.parse_args()
    frames = int(args.seconds * 30)
    s = settings_for(args.preset, args.sync, args.model_dir)
    for res in args.resolution or ["640x480", "1280x720"]:
        w, h = (int(v) for v in res.lower().split("x"))
        scored, run = app_scores(s, w, h, frames)
        alone = every_frame_scores(s, w, h, sorted(scored))
        app = statistics.mean(scored.values())
        own = statistics.mean(alone[i] for i in scored)
        print(f"[{args.preset}{', sync' if not s.async_segmentation else ', async'}] {w}x{h}: "
              f"{run['frames_out']} frames out of {frames}, masks {run['masks_per_s']:.1f}/s, latency "
              f"{run['latency_ms']:.0f} ms, dropped {run['dropped']} | person IoU: app {app:.4f}, each frame's "
              f"own mask {own:.4f}, trail gap {own - app:.4f}")


if __name__ == "__main__":
    main()
