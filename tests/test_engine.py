"""The engine end to end on real frames: compositing, live changes, failures, clean stop."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from bgswap.app.engine import Engine
from bgswap.app.settings import EngineSettings
from bgswap.app.sinks import CallbackSink
from bgswap.app.sources import CaptureRequest, StillSource
from bgswap.inference.backgrounds import BackgroundError


class Collector:
    def __init__(self):
        self.frames = []
        self.lock = threading.Lock()

    def __call__(self, frame):
        with self.lock:
            self.frames.append(frame.copy())

    def clear(self):
        with self.lock:
            self.frames.clear()


def make_engine(frame, **kw):
    statuses = []
    settings = EngineSettings(source="demo", width=frame.shape[1], height=frame.shape[0], realtime=False, **kw)
    engine = Engine(settings, on_status=lambda lvl, msg: statuses.append((lvl, msg)))
    return engine, statuses


def still(frame, fps=200):
    return StillSource(frame, CaptureRequest(frame.shape[1], frame.shape[0], fps))


def test_output_is_the_alpha_blend_of_frame_and_background(portrait_frame):
    engine, _ = make_engine(portrait_frame, background="color:#0000FF", async_segmentation=False)
    col = Collector()
    engine.start(still(portrait_frame))
    engine.add_sink(CallbackSink(col))
    assert engine.wait_for_frames(10, timeout=30)
    engine.stop()
    out, alpha = engine.last_output, engine.last_matte.full()
    expected = alpha[..., None] * portrait_frame + (1 - alpha[..., None]) * np.array([255, 0, 0])
    assert np.abs(out.astype(float) - expected).max() <= 2
    assert len(col.frames) >= 10 and col.frames[-1].shape == portrait_frame.shape


def test_background_changes_apply_while_running_and_bad_files_keep_the_previous(portrait_frame, tmp_path):
    engine, _ = make_engine(portrait_frame, background="color:#FF0000")
    col = Collector()
    engine.start(still(portrait_frame, fps=100))
    engine.add_sink(CallbackSink(col))
    try:
        assert engine.wait_for_frames(5, timeout=30)
        engine.set_background("color:#00FF00")
        n = engine.stats.frames_out
        assert engine.wait_for_frames(n + 5, timeout=30)
        bad = tmp_path / "bad.jpg"
        bad.write_bytes(b"garbage")
        with pytest.raises(BackgroundError, match="not a readable image"):
            engine.set_background(str(bad))
        assert engine.settings.background == "color:#00FF00"
        n = engine.stats.frames_out
        assert engine.wait_for_frames(n + 5, timeout=30)
    finally:
        engine.stop()
    out, alpha = engine.last_output, engine.last_matte.full()
    bg = alpha < 0.02
    assert bg.mean() > 0.05                       # the demo photo has room around the person
    assert np.abs(out[bg].astype(int) - [0, 255, 0]).max() <= 6   # wherever the model saw background, it is green now
    mixed = alpha[..., None] * portrait_frame + (1 - alpha[..., None]) * np.array([0, 255, 0])
    assert np.abs(out.astype(float) - mixed).max() <= 2


def test_mirror_and_none_background(portrait_frame):
    engine, _ = make_engine(portrait_frame, background="none", mirror=True)
    engine.start(still(portrait_frame))
    assert engine.wait_for_frames(3, timeout=30)
    engine.stop()
    np.testing.assert_array_equal(engine.last_output, portrait_frame[:, ::-1])


def test_live_settings_change(portrait_frame):
    engine, _ = make_engine(portrait_frame, background="blur")
    engine.start(still(portrait_frame))
    try:
        engine.update(threshold=0.6, feather=0.1, temporal=0.0, largest_person_only=True, mirror=False)
        assert engine.refiner.settings.threshold == 0.6 and engine.refiner.settings.largest_person_only
        engine.update(input_size=192)
        assert engine.segmenter.input_size == (192, 192)
        n = engine.stats.frames_out
        assert engine.wait_for_frames(n + 3, timeout=30)
        engine.update(input_size=224)
        assert engine.segmenter.input_size == (224, 224)
        engine.update(async_segmentation=False)
        n = engine.stats.frames_out
        assert engine.wait_for_frames(n + 5, timeout=30)
        with pytest.raises(ValueError):
            engine.update(threshold=2.0)
        assert engine.refiner.settings.threshold == 0.6
        with pytest.raises(ValueError, match="cannot be changed"):
            engine.update(width=10)
    finally:
        engine.stop()
    snap = engine.snapshot()
    assert snap.frames_out > 5 and snap.stage_ms["model"] > 0 and snap.stage_ms["composite"] > 0
    assert "onnxruntime" in snap.backend


class FlakyCamera:
    """A live source that disappears after a few frames and comes back after two failed reopens."""

    live = True
    name = "camera test"
    fps = 100.0
    last_wait = 0.0

    def __init__(self, frame):
        self.frame = frame
        self.reads = 0
        self.opens = 0
        self.is_open = False

    def open(self):
        from bgswap.app.sources import SourceError

        self.opens += 1
        if 2 <= self.opens <= 3:
            raise SourceError("camera test could not be opened")
        self.is_open = True

    def read(self):
        time.sleep(0.01)
        self.reads += 1
        if not self.is_open or 20 <= self.reads < 25:
            return None
        return self.frame

    def close(self):
        self.is_open = False


@pytest.mark.slow
def test_camera_lost_midrun_is_reported_and_recovered(portrait_frame):
    engine, statuses = make_engine(portrait_frame, background="green")
    cam = FlakyCamera(portrait_frame)
    engine.start(cam)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("reconnected" in m for _, m in statuses):
            time.sleep(0.05)
        n = engine.stats.frames_out
        assert engine.wait_for_frames(n + 5, timeout=10)
    finally:
        engine.stop()
    msgs = [m for _, m in statuses]
    assert any("lost" in m for m in msgs) and any("reconnected" in m for m in msgs)
    assert cam.opens >= 4 and not cam.is_open


def test_stop_ends_every_thread_and_releases_the_source(portrait_frame):
    engine, _ = make_engine(portrait_frame, background="blur")
    cam = FlakyCamera(portrait_frame)
    engine.start(cam)
    assert engine.wait_for_frames(3, timeout=30)
    engine.stop()
    names = {t.name for t in threading.enumerate()}
    assert not names & {"capture", "segment", "process"}
    assert not cam.is_open
    engine.stop()   # twice is fine


def test_paused_output_is_frozen_and_the_model_rests(portrait_frame):
    engine, _ = make_engine(portrait_frame, background="blur")
    out = Collector()
    engine.add_sink(CallbackSink(out))
    moving = [portrait_frame, np.ascontiguousarray(portrait_frame[:, ::-1])] * 2000   # a still one rests anyway
    engine.start(ScriptedSource(moving, live=False))
    try:
        assert engine.wait_for_frames(5, timeout=30)
        engine.pause(True)
        time.sleep(0.3)                                   # frames already in flight finish
        model_runs = []
        real_predict = engine.segmenter.predict_lowres
        engine.segmenter.predict_lowres = lambda img: (model_runs.append(1), real_predict(img))[1]
        shown = len(out.frames)
        n = engine.stats.frames_out
        assert engine.wait_for_frames(n + 10, timeout=30)  # output goes on at the camera's rate
        assert not model_runs                             # but nothing is segmented
        assert all(np.array_equal(f, out.frames[shown]) for f in out.frames[shown:])
        engine.pause(False)
        time.sleep(0.2)
        n = engine.stats.frames_out
        assert engine.wait_for_frames(n + 5, timeout=30) and model_runs
    finally:
        engine.stop()


def test_a_replaced_background_is_closed(portrait_frame):
    engine, _ = make_engine(portrait_frame, background="blur")

    class Tracked:
        kind, label = "test", "test"
        closed = 0

        def render(self, frame, alpha, reduced=None):
            return frame

        def close(self):
            self.closed += 1

    first, second = Tracked(), Tracked()
    engine.set_background("blur:3", first)
    engine.set_background("color:#102030", second)
    engine.set_background("color:#102030", second)        # setting the same one again keeps it open
    assert (first.closed, second.closed) == (1, 0)
    assert engine.settings.background == "color:#102030"


class ScriptedSource:
    """A source whose open/read follow a script: frames, None, or exceptions."""

    def __init__(self, reads, live=True, open_error=None, name="camera 9"):
        self.reads, self.live, self.open_error, self.name = list(reads), live, open_error, name
        self.fps, self.last_wait, self.opens = 30.0, 0.0, 0

    def open(self):
        self.opens += 1
        if self.open_error:
            raise self.open_error

    def read(self):
        time.sleep(0.005)
        item = self.reads.pop(0) if self.reads else None
        if isinstance(item, Exception):
            raise item
        return item

    def close(self):
        pass


def test_a_camera_that_raises_while_reconnecting_keeps_the_capture_thread(portrait_frame):
    engine, statuses = make_engine(portrait_frame, background="blur")
    script = [portrait_frame] * 3 + [None, RuntimeError("driver fell over"), RuntimeError("again")] + [portrait_frame] * 200
    engine.start(ScriptedSource(script))
    try:
        assert engine.wait_for_frames(8, timeout=30)
        assert any("lost: reconnecting" in m for _, m in statuses)
        assert any("reconnected" in m for _, m in statuses)
        assert any(t.name == "capture" and t.is_alive() for t in threading.enumerate())
    finally:
        engine.stop()


def test_a_camera_never_found_is_not_called_lost_and_stop_is_prompt(portrait_frame):
    from bgswap.app.sources import SourceError

    engine, statuses = make_engine(portrait_frame, background="blur")
    engine.start(ScriptedSource([], open_error=SourceError("camera 9 could not be opened")))
    time.sleep(1.5)                                  # inside the reconnect backoff
    t = time.monotonic()
    engine.stop()
    assert time.monotonic() - t < 1.0
    messages = " ".join(m for _, m in statuses)
    assert "could not be opened" in messages and "lost" not in messages


def test_a_file_source_that_stops_giving_frames_fails_the_run(portrait_frame):
    engine, statuses = make_engine(portrait_frame, background="blur")
    engine.start(ScriptedSource([portrait_frame] * 5 + [RuntimeError("decoder error")] * 1000, live=False,
                                name="video clip.mp4"))
    try:
        deadline = time.monotonic() + 15
        while engine.failure is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert engine.failure and "clip.mp4 stopped giving frames" in engine.failure
        assert ("error", engine.failure) in statuses
    finally:
        engine.stop()


def test_a_source_whose_open_raises_any_error_is_a_clear_source_error(portrait_frame):
    from bgswap.app.sources import SourceError

    engine, _ = make_engine(portrait_frame, background="blur")
    with pytest.raises(SourceError, match="video x.mp4 cannot be opened: codec exploded"):
        engine.start(ScriptedSource([], live=False, open_error=RuntimeError("codec exploded"), name="video x.mp4"))
    engine.stop()


@pytest.mark.parametrize("convert", [
    lambda f: f[..., 0],                                                     # grey, 2-D
    lambda f: f[..., :1],                                                    # grey, one channel
    lambda f: np.dstack([f, np.full(f.shape[:2], 255, np.uint8)]),           # BGRA
    lambda f: f.astype(np.uint16) * 257,                                     # 16-bit
    lambda f: f.astype(np.float32) / 255,                                    # float in [0, 1]
])
def test_frames_of_other_shapes_and_types_are_converted(portrait_frame, convert):
    engine, statuses = make_engine(portrait_frame, background="blur")
    engine.start(ScriptedSource([convert(portrait_frame)] * 100, live=False))
    try:
        assert engine.wait_for_frames(5, timeout=30)
        assert engine.last_output.shape == portrait_frame.shape and engine.last_output.dtype == np.uint8
        assert not [m for lvl, m in statuses if lvl == "error"]
    finally:
        engine.stop()


def test_a_huge_background_keeps_only_what_the_output_needs(tmp_path):
    import cv2

    from bgswap.inference.backgrounds import parse_background

    path = tmp_path / "huge.png"
    cv2.imwrite(str(path), np.zeros((4000, 6000, 3), np.uint8))
    bg = parse_background(str(path), fit=(640, 480))
    assert bg.image.shape[:2] == (480, 720)          # covers 640x480 at the photo's 3:2 shape, nothing more
    assert parse_background(str(path)).image.shape[:2] == (2560, 3840)    # unknown output: 4K at most


def test_every_engine_setting_says_how_a_change_reaches_the_engine():
    import dataclasses

    from bgswap.app.model_holder import MODEL_FIELDS
    from bgswap.app.settings.schema import LIVE, MODEL, RESTART

    kinds = {f.name: f.metadata["change"] for f in dataclasses.fields(EngineSettings)}
    assert set(kinds.values()) <= {LIVE, MODEL, RESTART}
    assert {k for k, v in kinds.items() if v == MODEL} == set(MODEL_FIELDS) >= {"input_size", "threads", "passes",
                                                                               "model", "model_dir"}
    assert {k for k, v in kinds.items() if v == RESTART} == {"source", "width", "height", "fps", "realtime"}


def test_apply_takes_the_difference(portrait_frame, tmp_path):
    from bgswap.app.settings.convert import engine_with
    from bgswap.app.settings.presets import preset_values
    from bgswap.inference.model_meta import ModelError

    engine = Engine(EngineSettings(background="blur"))
    first = engine.models.ensure(engine.settings)
    new = engine_with(engine.settings, {"engine.refine.threshold": 0.6, "engine.mirror": True,
                                        "engine.width": 320, "engine.background": "color:#00ff00"})
    assert engine.apply(new) == ["width"]                        # waits for a restart, kept as it was
    s = engine.settings
    assert (s.refine.threshold, s.mirror, s.width, s.background) == (0.6, True, 640, "color:#00ff00")
    assert engine.refiner.settings.threshold == 0.6 and engine.segmenter is first       # no model field changed
    assert engine.apply(engine_with(s, preset_values("quality"))) == []
    assert engine.segmenter is not first and engine.segmenter.passes == 2 and s.preset == "quality"
    engine.update(threads=1)                                     # one knob: the preset it matches, or custom
    assert s.preset == "custom" and engine.segmenter.backend is not None
    built = engine.segmenter
    bad = engine_with(s, {"engine.model_dir": str(tmp_path / "nothing"), "engine.mirror": False})
    with pytest.raises(ModelError):
        engine.apply(bad)
    assert engine.segmenter is built and s.mirror and s.model_dir is None    # nothing changed


@pytest.mark.parametrize("w, h", [(1, 1), (1, 4), (4, 1), (1, 480), (640, 1), (3, 5)])
def test_a_camera_giving_tiny_frames_never_breaks_the_engine(portrait_frame, caplog, w, h):
    """A 1-pixel-wide camera mode and the like: frames come out at that size, with every edge step on
    (OpenCV's arithmetic with a number failed on 1x1 and 4x1 arrays)."""
    import logging

    import cv2

    from bgswap.inference.refine import RefineSettings

    frame = cv2.resize(portrait_frame, (w, h), interpolation=cv2.INTER_AREA)
    refine = RefineSettings(decontaminate=True, light_wrap=0.5)
    for background in ("blur", "color:#00FF00"):
        engine, statuses = make_engine(portrait_frame, background=background, refine=refine, mask_rate=0)
        with caplog.at_level(logging.ERROR):
            engine.start(ScriptedSource([frame] * 200, live=False))
            try:
                assert engine.wait_for_frames(5, timeout=10), statuses
                assert engine.last_output.shape == (h, w, 3)
            finally:
                engine.stop()
        assert not [m for lvl, m in statuses if lvl == "error"]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[-2000:]
