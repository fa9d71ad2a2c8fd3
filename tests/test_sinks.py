"""Virtual camera through a recording pyvirtualcam backend, and the file writer."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from app.sinks import FileSink, SinkUnavailable, VirtualCameraSink


def test_virtual_camera_receives_bgr_frames_at_a_steady_rate(recording_backend):
    sink = VirtualCameraSink(backend="recording")
    sink.start(64, 48, 50)
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, :, 2] = 200                          # red in BGR
    sink.send(frame)
    time.sleep(0.5)
    sink.close()
    cam = recording_backend.instances[0]
    assert cam.closed
    assert cam.fourcc == __import__("pyvirtualcam.util", fromlist=["x"]).encode_fourcc("24BG")
    # One frame sent, yet the camera kept its 50 fps by repeating it (video apps want a steady rate).
    assert 15 <= len(cam.frames) <= 30
    np.testing.assert_array_equal(cam.frames[-1][0, 0], [0, 0, 200])
    gaps = np.diff(cam.times)
    assert 0.012 < np.median(gaps) < 0.035        # about 50 fps, with room for a loaded 2-core machine


def test_virtual_camera_sends_the_newest_frame(recording_backend):
    sink = VirtualCameraSink(backend="recording", device="/dev/video7")
    sink.start(32, 24, 30)
    assert sink.device_name == "/dev/video7"
    for v in range(10):
        sink.send(np.full((24, 32, 3), v, np.uint8))
    time.sleep(0.15)
    sink.close()
    assert recording_backend.instances[0].frames[-1][0, 0, 0] == 9


def test_virtual_camera_unavailable_says_how_to_fix(recording_backend):
    recording_backend.fail_with = "device not found"
    sink = VirtualCameraSink(backend="recording")
    with pytest.raises(SinkUnavailable) as err:
        sink.start(64, 48, 30)
    assert "device not found" in str(err.value)
    assert "modprobe v4l2loopback" in str(err.value) or "OBS" in str(err.value)


def test_file_sink_writes_every_frame(tmp_path):
    path = tmp_path / "out.avi"
    sink = FileSink(path)
    sink.start(64, 48, 30)
    for v in range(20):
        sink.send(np.full((48, 64, 3), v * 10, np.uint8))
    sink.close()
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 20


def test_file_sink_bad_folder(tmp_path):
    with pytest.raises(SinkUnavailable, match="does not exist"):
        FileSink(tmp_path / "no" / "such" / "out.mp4").start(64, 48, 30)


def test_file_sink_keeps_no_file_without_frames(tmp_path):
    path = tmp_path / "empty.mp4"
    sink = FileSink(path)
    sink.start(64, 48, 30)
    sink.close()
    assert not path.exists() and sink.frames_written == 0
