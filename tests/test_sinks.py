"""Virtual camera through a recording pyvirtualcam backend, and the file writer."""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from bgswap.app.sinks import FileSink, SinkUnavailable, VirtualCameraSink


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


def record(path, frames: int) -> FileSink:
    """A 64x48 recording of ``frames`` grey frames, each a different grey; the sink, closed."""
    sink = FileSink(path)
    sink.start(64, 48, 30)
    for v in range(frames):
        sink.send(np.full((48, 64, 3), v * 10, np.uint8))
    sink.close()
    return sink


def test_file_sink_writes_every_frame(tmp_path):
    path = tmp_path / "out.avi"
    record(path, 20)
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 20


def test_file_sink_bad_folder(tmp_path):
    with pytest.raises(SinkUnavailable, match="does not exist"):
        FileSink(tmp_path / "no" / "such" / "out.mp4").start(64, 48, 30)


def test_file_sink_refuses_a_folder_before_recording(tmp_path):
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(SinkUnavailable, match="is a folder"):
        FileSink(tmp_path / "dir.mp4", overwrite=True).start(64, 48, 30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.mp4"]         # no lock, no partial file


def test_a_failed_final_move_keeps_nothing(tmp_path):
    """A folder that appears at the output's name during the run: the move fails, nothing is left."""
    path = tmp_path / "out.mp4"
    sink = FileSink(path, overwrite=True)
    sink.start(64, 48, 30)
    for v in range(5):
        sink.send(np.full((48, 64, 3), v * 10, np.uint8))
    path.mkdir()
    sink.close()
    assert sink.failed and "saving" in sink.error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"] and not any(path.iterdir())


def test_file_sink_keeps_no_file_without_frames(tmp_path):
    path = tmp_path / "empty.mp4"
    sink = FileSink(path)
    sink.start(64, 48, 30)
    sink.close()
    assert not path.exists() and sink.frames_written == 0


class FailingWriter:
    """A writer whose disk fills up after ``ok`` frames (what av raises on ENOSPC)."""

    codec = "fake"
    silent_failures = False

    def __init__(self, path, ok):
        self.path, self.ok, self.n = path, ok, 0
        open(path, "wb").close()

    def write(self, frame):
        self.n += 1
        if self.n > self.ok:
            raise OSError(28, "No space left on device")

    def close(self):
        pass


def test_a_full_disk_fails_the_recording_and_keeps_nothing(tmp_path, monkeypatch):
    out = tmp_path / "full.mp4"
    out.write_bytes(b"an earlier recording")          # replaced only by a complete new one (--overwrite)
    monkeypatch.setattr("bgswap.app.sinks.open_video_writer", lambda path, w, h, fps: FailingWriter(path, 7))
    sink = record(out, 20)
    assert sink.failed and "No space left on device" in sink.error and "after 7 frames" in sink.error
    assert out.read_bytes() == b"an earlier recording"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.mp4"]        # no partial file, no lock


def test_a_writer_that_loses_frames_silently_is_caught(tmp_path, monkeypatch):
    """OpenCV's writer prints 'Failed to write frame' on a full disk and carries on: the frame count
    read back from the file catches it."""
    from bgswap.app import video_writer

    real = video_writer.OpenCVWriter.write
    calls = {"n": 0}

    def lossy(self, frame):
        calls["n"] += 1
        if calls["n"] <= 5:
            real(self, frame)

    monkeypatch.setattr(video_writer.OpenCVWriter, "write", lossy)
    out = tmp_path / "lossy.avi"
    sink = record(out, 20)
    assert sink.failed and "5 of 20 frames" in sink.error
    assert not out.exists()


def test_one_output_file_has_one_writer(tmp_path):
    out = tmp_path / "one.avi"
    first = FileSink(out)
    first.start(64, 48, 30)
    with pytest.raises(SinkUnavailable, match="another bgswap is writing"):
        FileSink(out).start(64, 48, 30)
    first.send(np.zeros((48, 64, 3), np.uint8))
    first.close()
    second = FileSink(out)                            # free again once the first is done
    second.start(64, 48, 30)
    second.close()
    assert out.exists()


def test_partial_files_a_killed_recording_left_are_removed_by_the_next(tmp_path):
    out = tmp_path / "talk.avi"
    stale = tmp_path / ".talk.k3j_9x2q.partial.avi"          # as mkstemp names them
    stale.write_bytes(b"half a recording")
    other = tmp_path / ".talk.2.k3j_9x2q.partial.avi"        # another output's ("talk.2.avi"): kept
    other.write_bytes(b"someone else's")
    sink = FileSink(out)
    sink.start(64, 48, 30)
    sink.send(np.zeros((48, 64, 3), np.uint8))
    sink.close()
    assert out.exists() and not stale.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".talk.2.k3j_9x2q.partial.avi", "talk.avi"]


def test_a_folder_that_cannot_be_listed_still_records(tmp_path, monkeypatch):
    """Write-only folders (mode 0733) and other users' leftovers: tidying is skipped, the recording is not."""
    real_iterdir = Path.iterdir

    def no_listing(self):
        if self == tmp_path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", no_listing)
    out = tmp_path / "talk.avi"
    sink = FileSink(out)
    sink.start(64, 48, 30)
    sink.send(np.zeros((48, 64, 3), np.uint8))
    sink.close()
    assert out.exists() and not sink.failed


def test_a_long_h264_recording_is_not_mistaken_for_a_full_disk(tmp_path):
    """x264 holds frames back, so an .mp4 grows in bursts: only writers that fail silently (OpenCV's)
    have their growth watched. 300 small, nearly still frames: the file grows little between bursts."""
    path = tmp_path / "long.mp4"
    sink = FileSink(path)
    sink.start(96, 72, 30)
    for v in range(300):
        while sink._q.qsize() > 8:                       # at the writer's pace: a recording drops nothing
            time.sleep(0.001)
        sink.send(np.full((72, 96, 3), 100 + v % 3, np.uint8))
    sink.close()
    assert not sink.failed, sink.error
    assert path.exists() and sink.frames_written == 300
