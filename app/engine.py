"""The real-time engine every front end drives.

capture thread -> (segmentation thread, when asynchronous) -> processing thread -> sinks

Hand-offs hold only the newest frame, so a slow stage drops stale frames
instead of building latency. With ``async_segmentation`` the model runs in its
own thread and every camera frame is composited with the newest mask, so the
output keeps the camera's rate even when the model is slower.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import threading
import time

import cv2
import numpy as np

from bgswap.inference import Segmenter
from bgswap.inference.background_spec import BackgroundSpec
from bgswap.inference.backgrounds import Background, BackgroundError, parse_background
from bgswap.inference.compose import Compositor
from bgswap.inference.framing import AutoFramer
from bgswap.inference.refine import MaskRefiner, Matte, RefineSettings

from .capture import Capture, Frame, StatusCallback
from .mask_schedule import MaskSchedule
from .model_holder import ModelHolder
from .settings import EngineSettings
from .settings.schema import RESTART, fields_that_change
from .settings.presets import preset_of
from .slots import LatestSlot
from .sinks import Sink
from .sources import CaptureRequest, Source, open_source
from .stats import PipelineStats, StatsSnapshot

log = logging.getLogger(__name__)

RESTART_FIELDS = fields_that_change(EngineSettings, RESTART)

# OpenCV's own thread pool splits every resize and filter of a 640x480 frame across the cores. For
# frames that small the hand-offs cost more than they save (refinement: 8.7 CPU ms per frame on
# 2 threads against 2.6 on one, and slower in wall time too), and the engine already runs capture,
# model and processing on threads of their own. One OpenCV thread per caller.
OPENCV_THREADS = 1



class Engine:
    """Owns the source, the model and the threads; front ends add sinks and change settings."""

    def __init__(self, settings: EngineSettings | None = None, on_status: StatusCallback | None = None):
        self.settings = (settings or EngineSettings()).validate()
        self.on_status = on_status
        self.stats = PipelineStats()
        self.compositor = Compositor(self.settings.refine)
        self.framer = AutoFramer()
        self._framed_mask: np.ndarray | None = None      # the mask the framer last saw
        self.refiner = MaskRefiner(self.settings.refine)
        self.schedule = MaskSchedule(self.settings.mask_rate)
        self.models = ModelHolder()
        self.background: Background | None = None
        self.sinks: list[Sink] = []
        self._sinks_lock = threading.Lock()
        self._frames: LatestSlot[Frame] = LatestSlot()
        self._to_model: LatestSlot[Frame] = LatestSlot()
        self.capture = Capture(self._frames, self.stats, self._status, mirror=lambda: self.settings.mirror,
                               idle=self._idle_now)
        self._mask: np.ndarray | None = None            # newest low-resolution person probability
        self._mask_ready = threading.Event()
        self._running = threading.Event()
        self._stopping = threading.Event()               # set by stop(): waits (reconnect backoff) end at once
        self._paused = threading.Event()
        self._threads: list[threading.Thread] = []
        self._out_cond = threading.Condition()
        self._started_at = time.monotonic()
        self._first_out = True                           # log the first frame out of each start
        self.first_out_at: float | None = None           # monotonic time of this start's first frame out
        self.last_output: np.ndarray | None = None
        self.last_matte: Matte | None = None

    # ---- life cycle -------------------------------------------------------------------------
    def start(self, source: Source | None = None) -> None:
        """Load model and background, open the source (``settings.source`` unless given) and start the threads.

        Raises ModelError, BackgroundError or SourceError (files) with a message for the user.
        A camera that cannot be opened is reported and retried in the background.
        """
        s = self.settings
        cv2.setNumThreads(OPENCV_THREADS)
        self.stats.backend = self.models.ensure(s).backend_name
        if self.background is None:
            self.background = parse_background(s.background, fit=(s.width, s.height))
        self.capture.open_first(source or open_source(s.source, CaptureRequest(s.width, s.height, s.fps),
                                                      realtime=s.realtime))
        self._stopping.clear()
        self._started_at = time.monotonic()
        self._first_out = True
        self.first_out_at = None
        self._running.set()
        self._threads = [
            threading.Thread(target=self.capture.run, args=(self._running, self._stopping), name="capture",
                             daemon=True),
            threading.Thread(target=self._segment_loop, name="segment", daemon=True),
            threading.Thread(target=self._process_loop, name="process", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        """Stop the threads, release the camera, finalise every sink. Safe to call twice."""
        self._running.clear()
        self._stopping.set()
        self._frames.close()
        self._to_model.close()
        self._mask_ready.set()
        for t in self._threads:
            t.join(timeout=5)
            if t.is_alive():
                log.warning("thread %s did not stop in time", t.name)
        self._threads = []
        self.capture.close()
        with self._sinks_lock:
            sinks, self.sinks = self.sinks, []
        for sink in sinks:
            try:
                sink.close()
            except Exception:
                log.exception("closing %s failed", sink.name)
        self._frames, self._to_model = LatestSlot(), LatestSlot()
        self.capture.frames = self._frames
        self._mask_ready.clear()

    @property
    def source(self) -> Source | None:
        return self.capture.source

    @property
    def failure(self) -> str | None:
        """Why the run cannot go on (a file source died), or None."""
        return self.capture.failure

    @property
    def running(self) -> bool:
        return self._running.is_set()

    def __enter__(self) -> "Engine":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- live controls ----------------------------------------------------------------------
    def add_sink(self, sink: Sink) -> None:
        """Start ``sink`` at the output size and rate; raises SinkUnavailable with the fix."""
        sink.start(self.settings.width, self.settings.height, self.settings.fps)
        with self._sinks_lock:
            self.sinks.append(sink)

    def remove_sink(self, sink: Sink) -> None:
        with self._sinks_lock:
            if sink in self.sinks:
                self.sinks.remove(sink)
        sink.close()

    def set_background(self, spec: "str | BackgroundSpec", loaded: Background | None = None) -> Background:
        """Switch to the background ``spec`` names (``loaded``: already built from it, e.g. off the GUI
        thread) and record the spec in the settings; on a bad file the previous one stays and
        BackgroundError is raised."""
        spec = BackgroundSpec.parse(spec)
        bg = loaded if loaded is not None else parse_background(spec, fit=self.output_size)
        old, self.background = self.background, bg
        if old is not None and old is not bg:
            old.close()
        self.settings.background = str(spec)
        return bg

    @property
    def output_size(self) -> tuple[int, int]:
        return self.settings.width, self.settings.height

    @property
    def segmenter(self) -> Segmenter | None:
        """The model in use (None before the first start)."""
        return self.models.segmenter

    def apply(self, new: EngineSettings) -> list[str]:
        """Bring the engine to ``new``: LIVE fields at once, a new model when a MODEL field changed (built
        before anything changes, off the frame path), a new background when it changed. Returns the
        RESTART fields that differ (kept as they are until the next start). A bad value raises
        SettingsError, a bad background file BackgroundError, a model that cannot be built its error:
        each leaves the engine as it was."""
        new = copy.deepcopy(new).validate()
        cur = self.settings
        changed = {f.name for f in dataclasses.fields(new) if getattr(new, f.name) != getattr(cur, f.name)}
        restart = sorted(changed & RESTART_FIELDS)
        for name in restart:
            setattr(new, name, getattr(cur, name))
        background = None
        if "background" in changed:
            background = parse_background(BackgroundSpec.parse(new.background), fit=self.output_size)
        if self.models.differs(new):
            try:
                self.stats.backend = self.models.ensure(new).backend_name
            except BaseException:
                if background is not None:
                    background.close()
                raise
        if background is not None:
            self.set_background(new.background, background)
        if "preset" not in changed:         # knobs set one by one: name the preset they match, or custom
            new.preset = preset_of(new)
        for f in dataclasses.fields(new):
            setattr(self.settings, f.name, getattr(new, f.name))
        self.refiner.settings = self.compositor.settings = self.settings.refine
        self.schedule.max_rate = self.settings.mask_rate
        return restart

    def update(self, **changes) -> None:
        """``apply`` the settings with ``changes``: top-level field names or RefineSettings' names. Only
        what can change while running (ValueError names any other)."""
        new = copy.deepcopy(self.settings)
        refine_fields = {f.name for f in dataclasses.fields(RefineSettings)}
        for key, value in changes.items():
            if key in refine_fields:
                setattr(new.refine, key, value)
            elif hasattr(new, key) and key not in RESTART_FIELDS:
                setattr(new, key, value)
            else:
                raise ValueError(f"setting {key!r} cannot be changed while running")
        self.apply(new)

    def set_source(self, spec: str, width: int | None = None, height: int | None = None,
                   fps: float | None = None) -> None:
        """Switch camera or file while running; raises SourceError for a bad file, keeping the old source."""
        s = self.settings
        req = CaptureRequest(width or s.width, height or s.height, fps or s.fps)
        new = open_source(spec, req, realtime=s.realtime)
        new.open()      # a camera that cannot be opened leaves the current source running
        resized = (req.width, req.height) != self.output_size
        old = self.capture.swap(new)
        s.source, s.width, s.height, s.fps = spec, req.width, req.height, req.fps
        if old is not None:
            old.close()
        self.refiner.reset()
        if resized and self.background is not None and self.background.kind == "image":
            try:                      # reload at the new size: only what the old one needed was kept
                self.set_background(s.background)
            except BackgroundError as exc:
                log.warning("background not reloaded for the new size: %s", exc)
        self._status("info", f"source: {new.name}")

    def pause(self, paused: bool) -> None:
        """Paused: the last output frame keeps being shown, the camera is still read."""
        if paused:
            self._paused.set()
        else:
            self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def snapshot(self) -> StatsSnapshot:
        snap = self.stats.snapshot()
        snap.dropped = self._frames.dropped
        return snap

    def wait_for_frames(self, n: int, timeout: float) -> bool:
        """Block until ``n`` frames in total have been output, or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        with self._out_cond:
            while self.stats.frames_out < n:
                left = deadline - time.monotonic()
                if left <= 0 or not self.running:
                    return self.stats.frames_out >= n
                self._out_cond.wait(min(left, 0.2))
        return True

    # ---- threads ----------------------------------------------------------------------------
    def _status(self, level: str, message: str) -> None:
        getattr(log, level if level in ("info", "warning", "error") else "info")(message)
        if self.on_status is not None:
            try:
                self.on_status(level, message)
            except Exception:
                log.exception("status callback failed")

    def _idle_now(self) -> bool:
        """True while there are outputs and none is watched (no virtual-camera reader, preview hidden).
        Entering idle drops the mask, so the first frame after it gets a fresh one."""
        with self._sinks_lock:
            sinks = list(self.sinks)
        idle = bool(sinks) and not any(s.watched for s in sinks)
        if idle != self.stats.idle:
            self.stats.idle = idle
            if idle:
                self._mask = None
                self._mask_ready.clear()
                self.schedule.reset()
                self.refiner.reset()
            self._status("info", "idle: no one is watching" if idle else "someone is watching: resuming")
        return idle

    def _segment_loop(self) -> None:
        """Run the model on the newest frame when the schedule says so (rate cap, still picture)."""
        while self._running.is_set():
            wait = self.schedule.wait_before_next(time.monotonic())
            if wait > 0 and self._stopping.wait(wait):
                break
            item = self._to_model.get(timeout=0.2)
            if item is None or not self.schedule.should_run(item.image, item.captured_at):
                continue
            try:
                self._mask = self._predict(item.image)
            except Exception as exc:          # keep the last mask; say what happened
                log.exception("segmentation failed")
                self._status("error", f"segmentation failed: {exc}")
                self._stopping.wait(0.5)
                continue
            self._mask_ready.set()

    def _predict(self, image: np.ndarray) -> np.ndarray:
        seg = self.segmenter
        prob = seg.predict_lowres(image)
        self.stats.stage("model", seg.last_ms)
        self.stats.model_run()
        return prob

    def _process_loop(self) -> None:
        while self._running.is_set():
            item = self._frames.get(timeout=0.2)
            if item is None:
                continue
            try:
                self._process(item)
            except Exception as exc:
                log.exception("frame %d failed", item.seq)
                self._status("error", f"processing failed: {exc}")
                time.sleep(0.1)

    def _process(self, item: Frame) -> None:
        frame = item.image
        if self._paused.is_set() and self.last_output is not None:
            self._send(self.last_output, item)          # frozen picture: no model, refinement or compositing
            return
        if self.settings.async_segmentation:
            self._to_model.put(item)
            if self._mask is None:
                self._mask_ready.wait(timeout=5.0)
                if self._mask is None:
                    return
            prob = self._mask
        else:
            if self._mask is None or self.schedule.should_run(frame, item.captured_at):
                self._mask = self._predict(frame)
            prob = self._mask
        t = time.perf_counter()
        matte = self.refiner.matte(prob, frame)
        t2 = time.perf_counter()
        out = self.compositor(frame, matte, self.background)
        if self.settings.auto_frame:
            if prob is not self._framed_mask:
                self.framer.update(prob)
                self._framed_mask = prob
            out = self.framer.apply(out)
        elif self._framed_mask is not None:
            self.framer.reset()
            self._framed_mask = None
        t3 = time.perf_counter()
        self.stats.stage("refine", (t2 - t) * 1000)
        self.stats.stage("composite", (t3 - t2) * 1000)
        self.last_matte = matte
        self.last_output = out
        self._send(out, item)

    def _send(self, out: np.ndarray, item: Frame) -> None:
        t = time.perf_counter()
        with self._sinks_lock:
            sinks = list(self.sinks)
        for sink in sinks:
            try:
                sink.send(out)
            except Exception:
                log.exception("sink %s failed", sink.name)
        self.stats.stage("sinks", (time.perf_counter() - t) * 1000)
        if self._first_out:
            self._first_out = False
            self.first_out_at = time.monotonic()
            log.info("first frame out %.1f s after start", self.first_out_at - self._started_at)
        with self._out_cond:
            self.stats.frame_out(item.captured_at)
            self._out_cond.notify_all()
