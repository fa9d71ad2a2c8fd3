"""Per-stage timings, rates and drops of the pipeline, readable from any thread."""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

STAGES = ("capture", "model", "refine", "composite", "sinks")


@dataclass
class StatsSnapshot:
    fps_in: float = 0.0
    fps_out: float = 0.0
    fps_model: float = 0.0
    latency_ms: float = 0.0
    cpu_ms_per_frame: float = 0.0
    stage_ms: dict = field(default_factory=dict)
    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    backend: str = ""
    idle: bool = False

    def line(self) -> str:
        if self.idle:
            return f"idle: no one is watching (model and compositing stopped) | {self.backend}"
        stages = " ".join(f"{k} {v:.1f}" for k, v in self.stage_ms.items())
        return (f"in {self.fps_in:.1f} fps, out {self.fps_out:.1f} fps, model {self.fps_model:.1f}/s, "
                f"latency {self.latency_ms:.0f} ms, cpu {self.cpu_ms_per_frame:.1f} ms/frame, "
                f"dropped {self.dropped} | ms: {stages} | {self.backend}")


class _Rate:
    def __init__(self, window: float = 2.0):
        self.window = window
        self.t: deque[float] = deque()

    def tick(self, now: float) -> None:
        self.t.append(now)
        while self.t and now - self.t[0] > self.window:
            self.t.popleft()

    def rate(self, now: float) -> float:
        while self.t and now - self.t[0] > self.window:
            self.t.popleft()
        if len(self.t) < 2:
            return 0.0
        return (len(self.t) - 1) / max(1e-6, self.t[-1] - self.t[0])


class PipelineStats:
    """Exponential moving averages of stage times plus frame counters."""

    def __init__(self, smoothing: float = 0.1):
        self.k = smoothing
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._ms = {s: 0.0 for s in STAGES}
            self._in, self._out, self._model = _Rate(), _Rate(), _Rate()
            self.frames_in = self.frames_out = 0
            self._latency = 0.0
            self._cpu0 = time.process_time()
            self._cpu_frames0 = 0
            self._cpu_ms = 0.0
            self.backend = ""
            self.idle = False

    def stage(self, name: str, ms: float) -> None:
        with self._lock:
            old = self._ms.get(name, 0.0)
            self._ms[name] = ms if old == 0.0 else old + self.k * (ms - old)

    def frame_in(self) -> None:
        with self._lock:
            self.frames_in += 1
            self._in.tick(time.monotonic())

    def model_run(self) -> None:
        with self._lock:
            self._model.tick(time.monotonic())

    def frame_out(self, captured_at: float) -> None:
        now = time.monotonic()
        with self._lock:
            self.frames_out += 1
            self._out.tick(now)
            lat = (now - captured_at) * 1000
            self._latency = lat if self._latency == 0 else self._latency + self.k * (lat - self._latency)
            if self.frames_out - self._cpu_frames0 >= 30:
                cpu = time.process_time()
                self._cpu_ms = (cpu - self._cpu0) * 1000 / (self.frames_out - self._cpu_frames0)
                self._cpu0, self._cpu_frames0 = cpu, self.frames_out

    def snapshot(self) -> StatsSnapshot:
        now = time.monotonic()
        with self._lock:
            return StatsSnapshot(self._in.rate(now), self._out.rate(now), self._model.rate(now), self._latency,
                                 self._cpu_ms, dict(self._ms), self.frames_in, self.frames_out, 0, self.backend, self.idle)
