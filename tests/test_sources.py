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


def test_walking_demo_walks_across_sits_and_loops():
    """``demo:walk``: the person (its true alpha, and the shipped model's mask) starts left, walks right
    and sits lower; the clip is smooth (no frame jumps) and loops."""
    from bgswap.app.mask_schedule import thumbnail
    from bgswap.app.walking_demo import PERIOD_S
    from bgswap.inference import Segmenter

    src = open_source("demo:walk", CaptureRequest(640, 360, 30), realtime=False)
    src.open()
    seg = Segmenter(threads=1)
    for t in (0.5, 6.0):                                    # the model finds the drawn person
        truth = src.person_alpha_at(round(t * 30)) > 0.5
        found = seg(src.frame_at(round(t * 30))) > 0.5
        assert (truth & found).sum() / (truth | found).sum() > 0.8

    def where(t: float) -> tuple[float, float]:
        p = src.person_alpha_at(round(t * 30)) > 0.5
        ys, xs = np.nonzero(p)
        return xs.mean() / 640, ys.min() / 360            # centre (share of width), head top (share of height)

    (x0, top0), (x1, top1) = where(0.5), where(6.0)
    assert x0 < 0.4 and x1 > 0.6                            # walked from the left to the right
    assert top1 > top0 + 0.05                               # and sat down
    thumbs = [thumbnail(src.frame_at(i)) for i in range(0, int(PERIOD_S * 30), 2)]
    steps = [float(np.abs(a - b).mean()) for a, b in zip(thumbs[1:], thumbs[:-1])]
    assert max(steps) < 12 and np.mean(steps) > 1.5        # always moving, never jumping
    np.testing.assert_array_equal(src.frame_at(0), src.frame_at(int(PERIOD_S * 30)))


def _disc_photo(path, w, h):
    """A white disc on grey, touching the shorter sides: stretching would make it an ellipse."""
    img = np.full((h, w, 3), 90, np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(w, h) // 2 - 1, (255, 255, 255), -1)
    cv2.imwrite(str(path), img)
    return path


def test_a_photo_is_never_stretched_and_a_file_is_its_own_size(tmp_path):
    """A 512x512 photo at 640x480 is fitted (the disc stays round, bars beside it); without --resolution a
    file source's own size is the output size (a 1280x720 video stays 1280x720), with it the asked one."""
    from bgswap.app import cli
    from bgswap.app.sources import fit_frame, natural_size

    photo = _disc_photo(tmp_path / "square.png", 512, 512)
    src = open_source(str(photo), CaptureRequest(640, 480, 30), realtime=False)
    src.open()
    frame = src.read()
    assert frame.shape == (480, 640, 3)
    ys, xs = np.nonzero(frame[..., 0] > 200)
    width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    assert abs(width - height) <= 2, (width, height)              # round, not squashed
    assert frame[:, :70].max() == 0 and frame[:, -70:].max() == 0  # bars beside it, the photo whole
    video = write_video(tmp_path / "hd.avi", [np.full((720, 1280, 3), v, np.uint8) for v in (10, 20)])
    assert natural_size(str(photo)) == (512, 512) and natural_size(str(video)) == (1280, 720)
    assert natural_size("demo") is None and natural_size("0") is None
    parser = cli.build_parser()
    for argv, size in (([], (1280, 720)), (["--resolution", "640x480"], (640, 480))):
        settings, session = cli.resolve_settings(parser.parse_args(["--source", str(video), *argv]), None)
        assert (settings.engine.width, settings.engine.height) == size
        assert session["engine.width"] == size[0]                   # this run's, never saved
    settings, _ = cli.resolve_settings(parser.parse_args(["--source", str(photo)]), None)
    assert (settings.engine.width, settings.engine.height) == (512, 512)
    big = natural_size(str(_disc_photo(tmp_path / "tall.png", 1500, 4000)))
    assert big == (720, 1920)                                       # scaled to fit 1080x1920 (portrait), even
    assert fit_frame(np.zeros((48, 64, 3), np.uint8), 64, 48).shape == (48, 64, 3)


def test_sinks_fit_frames_of_another_shape_without_stretching(tmp_path, recording_backend):
    from bgswap.app.sinks import VirtualCameraSink

    sink = VirtualCameraSink(backend="recording")
    sink.start(64, 48, 30)
    try:
        sink.send(np.full((48, 48, 3), 200, np.uint8))             # square into 4:3
        import time

        deadline = time.monotonic() + 5
        cam = recording_backend.instances[-1]
        while not cam.frames and time.monotonic() < deadline:
            time.sleep(0.02)
        out = cam.frames[-1]
    finally:
        sink.close()
    assert out.shape == (48, 64, 3) and out[:, :8].max() == 0 and out[:, 8:56].min() == 200


def _without_waiting(fn, fifo) -> Exception | None:
    """Run ``fn`` in a thread: what it raised, or a failure when it is still waiting after 5 s (then the
    FIFO gets a writer, which lets the stuck open() return)."""
    import os
    import threading

    out: dict = {}

    def call():
        try:
            fn()
        except Exception as exc:
            out["exc"] = exc

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(5)
    if t.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join(5)
        pytest.fail(f"waited on the FIFO {fifo}")
    return out.get("exc")


@pytest.mark.parametrize("name", ["photo.jpg", "clip.mp4", "no_suffix"])
def test_a_fifo_source_is_refused_without_opening_it(tmp_path, name):
    import os

    fifo = tmp_path / name
    os.mkfifo(fifo)
    exc = _without_waiting(lambda: open_source(str(fifo), CaptureRequest(), realtime=False).open(), fifo)
    assert isinstance(exc, SourceError) and "named pipe (FIFO), not a file" in str(exc), exc


def test_a_still_source_whose_file_became_a_fifo_is_refused(tmp_path):
    import os

    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    exc = _without_waiting(lambda: StillSource(None, CaptureRequest(), path=fifo, realtime=False).open(), fifo)
    assert isinstance(exc, SourceError) and "named pipe" in str(exc)


def test_an_image_source_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    """A PNG whose header claims 10000x6000 (60 MP, a few hundred bytes on disk) and a file whose size
    Pillow cannot read (Radiance HDR, which OpenCV would decode unchecked) are refused unread, as
    backgrounds are."""
    import struct
    import zlib

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 10000, 6000, 8, 2, 0, 0, 0))
                    + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))
    with pytest.raises(SourceError, match="60 megapixels"):
        open_source(str(big), CaptureRequest(), realtime=False).open()
    hdr = tmp_path / "radiance.png"
    hdr.write_bytes(cv2.imencode(".hdr", np.ones((8, 8, 3), np.float32))[1].tobytes())
    assert cv2.imread(str(hdr)) is not None
    with pytest.raises(SourceError, match="image source .* is not a readable image"):
        open_source(str(hdr), CaptureRequest(), realtime=False).open()
