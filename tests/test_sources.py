"""Capture sources on real files and the generated demo clip."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from bgswap.app.sources import CameraSource, CaptureRequest, DemoSource, SourceError, StillSource, VideoFileSource, open_source

from .conftest import write_video


def test_demo_moves_and_has_requested_size():
    src = DemoSource(CaptureRequest(320, 240, 30), realtime=False)
    src.open()
    a, b = src.read(), None
    for _ in range(15):
        b = src.read()
    assert a.shape == (240, 320, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 2      # the portrait moves


def test_demo_is_paced_at_its_rate():
    import time

    src = DemoSource(CaptureRequest(160, 120, 50))
    src.open()
    t = time.monotonic()
    for _ in range(11):
        src.read()
    assert time.monotonic() - t >= 0.18        # 10 intervals of 20 ms


def test_video_file_loops(tmp_path):
    frames = [np.full((48, 64, 3), v, np.uint8) for v in (0, 100, 200)]
    path = write_video(tmp_path / "clip.avi", frames)
    src = open_source(str(path), CaptureRequest(), realtime=False)
    assert isinstance(src, VideoFileSource)
    src.open()
    values = [int(src.read().mean()) for _ in range(7)]
    assert len(values) == 7 and values[3] == values[0]          # wrapped around


def test_still_image_source(tmp_path):
    path = tmp_path / "p.png"
    cv2.imwrite(str(path), np.full((30, 40, 3), 77, np.uint8))
    src = open_source(str(path), CaptureRequest(fps=200))
    assert isinstance(src, StillSource)
    src.open()
    assert src.read().mean() == 77


def test_bad_sources_are_clear(tmp_path):
    with pytest.raises(SourceError, match="not 'demo'"):
        open_source(str(tmp_path / "nope.mp4"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"xx")
    src = open_source(str(broken))
    with pytest.raises(SourceError, match="not a readable image"):
        src.open()


def test_missing_camera_names_the_fix():
    src = open_source("/dev/video99")
    assert isinstance(src, CameraSource) and src.live
    with pytest.raises(SourceError, match="could not be opened.*--source demo"):
        src.open()


def test_virtual_camera_devices_are_not_offered_as_cameras(monkeypatch):
    import bgswap.app.sources as sources

    names = {"/dev/video0": "Integrated Webcam", "/dev/video2": "Dummy video device (0x0000)",
             "/dev/video4": "BgSwap Camera"}
    monkeypatch.setattr(sources.platform, "system", lambda: "Linux")
    monkeypatch.setattr(sources, "_v4l2_devices", lambda: list(names))
    monkeypatch.setattr(sources, "_v4l2_name", lambda dev: names[dev])
    assert sources.list_cameras() == ["/dev/video0"]
    assert sources.list_virtual_cameras() == ["/dev/video2", "/dev/video4"]
    assert sources.default_source() == "/dev/video0"
    monkeypatch.setattr(sources, "_v4l2_devices", lambda: ["/dev/video2"])
    assert sources.default_source() == "demo"
