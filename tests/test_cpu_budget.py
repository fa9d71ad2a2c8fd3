"""What keeps the app light: the model's schedule, idling when nobody watches, presets, one or two
passes. Costs themselves are measured in benchmarks/bench_pipeline.py, not asserted here."""
from __future__ import annotations

import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from bgswap.app.engine import Engine
from bgswap.app.mask_schedule import MaskSchedule
from bgswap.app.settings import EngineSettings, Settings
from bgswap.app.sinks import VirtualCameraSink


def test_schedule_caps_the_rate_and_rests_on_a_still_picture(portrait_frame):
    s = MaskSchedule(max_rate=10, still_level=1.5, max_still_age=1.0)
    moved = np.ascontiguousarray(portrait_frame[:, ::-1])
    assert s.should_run(portrait_frame, 0.0)
    assert not s.should_run(moved, 0.05) and s.wait_before_next(0.05) == pytest.approx(0.04)   # 10/s at most
    assert not s.should_run(portrait_frame, 0.2) and s.still_skips == 1   # nothing moved: the last mask fits
    assert s.should_run(moved, 0.3)                       # motion brings the model back at once
    assert not s.should_run(moved, 0.9)
    assert s.should_run(moved, 1.35)                      # still, but the mask is over a second old


@pytest.mark.parametrize("size", [(640, 480), (1280, 720), (1920, 1080)])
def test_sensor_noise_reads_as_still_and_a_small_move_as_motion(portrait_frame, size):
    """The motion thumbnail averages the whole frame: noise of a dim webcam (sigma 4) stays far under
    the still level at every common size; a head turned by a few pixels does not."""
    rng = np.random.default_rng(0)
    base = cv2.resize(portrait_frame, size, interpolation=cv2.INTER_AREA).astype(np.float32)

    def noisy(img):
        return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)

    s = MaskSchedule(max_rate=100, still_level=1.5, max_still_age=100.0)
    assert s.should_run(noisy(base), 0.0)
    assert not any(s.should_run(noisy(base), t) for t in (1.0, 2.0, 3.0))
    moved = np.roll(base, size[0] // 60, axis=1)
    assert s.should_run(noisy(moved), 4.0)


def test_schedule_at_half_the_camera_rate_takes_every_second_frame(portrait_frame):
    s = MaskSchedule(max_rate=15, still_level=-1)               # still_level < 0: every frame counts as moved
    jitter = np.random.default_rng(0).uniform(-0.003, 0.003, 90)
    runs = [i for i in range(90) if s.should_run(portrait_frame, i / 30 + jitter[i])]
    assert runs == list(range(0, 90, 2))                        # 15 a second, not 10-12


def test_schedule_never_exceeds_its_cap_on_a_fast_camera(portrait_frame):
    s = MaskSchedule(max_rate=15, still_level=-1)
    runs = [i for i in range(300) if s.should_run(portrait_frame, i / 100)]      # 100 fps for 3 s
    assert 44 <= len(runs) <= 46 and min(np.diff(runs)) >= 6                       # 15 a second, no bursts


def test_schedule_with_rate_zero_runs_on_every_frame(portrait_frame):
    s = MaskSchedule(max_rate=0)
    assert all(s.should_run(portrait_frame, i / 1000) for i in range(6))


def test_a_still_camera_gets_few_masks_and_full_output(portrait_frame):
    from bgswap.app.sinks import CallbackSink
    from bgswap.app.sources import CaptureRequest, StillSource

    settings = EngineSettings(width=portrait_frame.shape[1], height=portrait_frame.shape[0], realtime=True,
                              background="blur")
    engine = Engine(settings)
    engine.add_sink(CallbackSink(lambda f: None))
    engine.start(StillSource(portrait_frame, CaptureRequest(portrait_frame.shape[1], portrait_frame.shape[0], 30)))
    runs = []
    real = engine.segmenter.predict_lowres
    engine.segmenter.predict_lowres = lambda img: (runs.append(1), real(img))[1]
    try:
        n = engine.stats.frames_out
        assert engine.wait_for_frames(n + 60, timeout=30)            # two seconds of output at 30 fps
        assert 1 <= len(runs) <= 4                                   # about one mask a second, not 30
    finally:
        engine.stop()


def test_nobody_watching_idles_and_a_reader_brings_frames_back(portrait_frame, tmp_path, recording_backend):
    """A temporary file stands in for /dev/videoN: another process opening it is a video-call app
    starting to read the virtual camera."""
    from bgswap.app.sources import CaptureRequest, StillSource

    node = tmp_path / "video9"
    node.write_bytes(b"")
    h, w = portrait_frame.shape[:2]
    moving = [portrait_frame, np.ascontiguousarray(portrait_frame[:, ::-1])]
    engine = Engine(EngineSettings(width=w, height=h, background="blur"))
    cam = VirtualCameraSink(backend="recording", reader_node=node)
    engine.add_sink(cam)
    src = StillSource(portrait_frame, CaptureRequest(w, h, 30))
    src.read = lambda: moving[int(time.monotonic() * 30) % 2].copy()
    engine.start(src)
    try:
        time.sleep(1.0)
        assert engine.snapshot().idle and "idle: no one is watching" in engine.snapshot().line()
        out = engine.stats.frames_out
        time.sleep(1.0)
        assert engine.stats.frames_out == out                          # nothing composited while idle
        reader = subprocess.Popen([sys.executable, "-c", f"import time; f = open({str(node)!r}); time.sleep(60)"])
        try:
            t0 = time.monotonic()
            assert engine.wait_for_frames(out + 1, timeout=10)
            resumed = time.monotonic() - t0
            assert not engine.snapshot().idle
            assert resumed < 1.5, resumed          # the reader's start-up (python) is most of it
            device = recording_backend.instances[-1]
            deadline = time.monotonic() + 2
            while not device.frames and time.monotonic() < deadline:  # the camera's sender thread
                time.sleep(0.01)
            assert device.frames
        finally:
            reader.kill()
            reader.wait()
        deadline = time.monotonic() + 5
        while not engine.snapshot().idle and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.snapshot().idle                                    # the reader left: idle again
    finally:
        engine.stop()


def test_a_minimised_window_with_no_camera_reader_idles(qtbot, tmp_path, monkeypatch, portrait_frame):
    import cv2

    from bgswap.app.gui.main_window import MainWindow

    monkeypatch.setenv("BGSWAP_CONFIG_DIR", str(tmp_path))
    still = tmp_path / "p.png"
    cv2.imwrite(str(still), portrait_frame)
    w = MainWindow(Settings(engine=EngineSettings(source=str(still), background="blur")))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.preview.frames_shown >= 2, timeout=30000)
    w.showMinimized()
    qtbot.waitUntil(lambda: w.engine.snapshot().idle, timeout=5000)
    qtbot.waitUntil(lambda: "idle" in w.stats_label.text(), timeout=5000)
    shown = w.preview.frames_shown
    w.showNormal()
    qtbot.waitUntil(lambda: w.preview.frames_shown > shown, timeout=5000)
    assert not w.engine.snapshot().idle
    w.close()


def test_presets_set_their_knobs_and_options_still_win():
    import argparse

    from bgswap.app.settings.cli_options import add_options, apply_options

    p = argparse.ArgumentParser()
    add_options(p)
    s, given = apply_options(Settings(), p.parse_args(["--preset", "quality", "--threads", "3"]))
    assert (s.engine.preset, s.engine.mask_rate, s.engine.passes, s.engine.threads) == ("quality", 0.0, 2, 3)
    assert given["engine.passes"] == 2                     # the preset's values are this run's, not saved
    d = EngineSettings()
    assert (d.preset, d.threads, d.mask_rate, d.passes) == ("balanced", 1, 15.0, 1)   # defaults are Balanced


def test_two_passes_average_the_mirror_image(model_dir, portrait_frame):
    from bgswap.inference import Segmenter

    one = Segmenter(model_dir, compute="cpu", precision="fp32", passes=1)
    two = Segmenter(model_dir, compute="cpu", precision="fp32", passes=2)
    frame = np.ascontiguousarray(portrait_frame[:, 40:])          # a person off-centre: not mirror-symmetric
    a, b = one.predict_lowres(frame), two.predict_lowres(frame)
    flipped = one.predict_lowres(np.ascontiguousarray(frame[:, ::-1]))[:, ::-1]
    assert (one.passes, two.passes) == (1, 2)
    assert np.allclose(b, (a + flipped) / 2, atol=1e-4) and not np.allclose(a, b, atol=1e-3)


def test_the_engine_keeps_opencv_to_one_thread(portrait_frame):
    """OpenCV's thread pool costs more CPU than it saves on webcam-sized frames (bench_pipeline)."""
    import cv2

    from bgswap.app.sinks import CallbackSink
    from bgswap.app.sources import CaptureRequest, DemoSource

    cv2.setNumThreads(2)
    engine = Engine(EngineSettings(background="blur"))
    engine.add_sink(CallbackSink(lambda _f: None))
    try:
        engine.start(DemoSource(CaptureRequest(320, 240, 30)))
        assert engine.wait_for_frames(3, timeout=30)
        assert cv2.getNumThreads() == 1
    finally:
        engine.stop()
        cv2.setNumThreads(-1)
