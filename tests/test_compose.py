"""Compositing on synthetic frames with a known mask, and every background mode."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from bgswap.inference.background_spec import parse_color
from bgswap.inference.backgrounds import (BackgroundError, BlurBackground, ColorBackground, ImageBackground, NoBackground,
                                          VideoBackground, cover_fit, parse_background)
from bgswap.inference.compose import Compositor

from .conftest import write_video


@pytest.fixture
def scene():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    alpha = np.zeros((120, 160), np.float32)
    alpha[20:100, 40:120] = 1.0
    alpha[20:100, 40] = 0.5
    return frame, alpha


def test_blend_uses_the_mask(scene):
    frame, alpha = scene
    out = Compositor()(frame, alpha, ColorBackground((10, 20, 30)))
    np.testing.assert_array_equal(out[50, 60], frame[50, 60])          # person kept
    np.testing.assert_array_equal(out[5, 5], [10, 20, 30])             # background replaced
    expected = (frame[50, 40].astype(np.float32) + [10, 20, 30]) / 2   # half-alpha edge is a mix
    np.testing.assert_allclose(out[50, 40], expected, atol=1)


def test_none_passes_the_frame_through(scene):
    frame, alpha = scene
    assert Compositor()(frame, alpha, NoBackground()) is frame


def test_cover_fit_keeps_aspect_ratio():
    img = np.zeros((100, 400, 3), np.uint8)     # 4:1 stripes: left half red, right half blue
    img[:, :200] = (0, 0, 255)
    img[:, 200:] = (255, 0, 0)
    cv2.circle(img, (200, 50), 40, (0, 255, 0), -1)
    out = cover_fit(img, 160, 120)
    assert out.shape == (120, 160, 3)
    # The circle stays round: its width equals its height in the output.
    g = out[..., 1] > 128
    ys, xs = np.nonzero(g)
    assert abs((xs.max() - xs.min()) - (ys.max() - ys.min())) <= 2


def test_image_background_fills_the_frame(tmp_path, scene):
    frame, alpha = scene
    path = tmp_path / "bg.png"
    cv2.imwrite(str(path), np.full((50, 50, 3), (0, 200, 0), np.uint8))
    out = Compositor()(frame, alpha, parse_background(str(path)))
    np.testing.assert_array_equal(out[0, 0], [0, 200, 0])
    np.testing.assert_array_equal(out[119, 159], [0, 200, 0])


def test_bad_background_files_give_clear_errors(tmp_path):
    with pytest.raises(BackgroundError, match="does not exist"):
        parse_background(str(tmp_path / "missing.jpg"))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(BackgroundError, match="not a readable image"):
        parse_background(str(broken))
    hdr = tmp_path / "radiance.png"        # OpenCV decodes it, but its size cannot be read first: refused unread
    hdr.write_bytes(cv2.imencode(".hdr", np.ones((8, 8, 3), np.float32))[1].tobytes())
    assert cv2.imread(str(hdr), cv2.IMREAD_UNCHANGED) is not None
    with pytest.raises(BackgroundError, match="not a readable image"):
        parse_background(str(hdr))
    bad_video = tmp_path / "broken.mp4"
    bad_video.write_bytes(b"nope")
    with pytest.raises(BackgroundError, match="not a readable video"):
        parse_background(str(bad_video))
    with pytest.raises(BackgroundError, match="#RRGGBB"):
        parse_background("color:blue")
    with pytest.raises(BackgroundError, match="blur"):
        parse_background("blur:500")


@pytest.mark.parametrize("name", ["bg.jpg", "bg.mp4", "bg"])
def test_a_fifo_background_is_refused_as_a_fifo(tmp_path, name):
    """Not 'does not exist', and without opening it (nobody writes to it: open() would wait for ever)."""
    import os

    from tests.test_sources import _without_waiting

    fifo = tmp_path / name
    os.mkfifo(fifo)
    exc = _without_waiting(lambda: parse_background(str(fifo)), fifo)
    assert isinstance(exc, BackgroundError) and "named pipe (FIFO), not a file" in str(exc), exc
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    with pytest.raises(BackgroundError, match="is a folder"):
        parse_background(str(folder))


def test_parse_modes():
    assert parse_color("#FF8000") == (0, 128, 255)
    assert parse_background("none").kind == "none"
    assert parse_background("blur").kind == "blur"
    assert parse_background("blur:30").strength == 30
    assert parse_background("green").bgr == (0, 255, 0)
    assert parse_background("color:#102030").bgr == (0x30, 0x20, 0x10)


def test_blur_has_no_halo_around_the_person():
    frame = np.full((240, 320, 3), 20, np.uint8)     # dark room
    alpha = np.zeros((240, 320), np.float32)
    alpha[40:240, 110:210] = 1.0
    frame[alpha > 0] = 250                           # bright person
    bg = BlurBackground(25).render(frame, alpha)
    out = Compositor()(frame, alpha, BlurBackground(25))
    # Just outside the person, the blurred background must stay dark (no bright glow bleeding out).
    assert bg[120, 100].max() < 40
    plain = cv2.GaussianBlur(frame, (0, 0), 12.5)
    assert plain[120, 100].max() > 60                # a naive blur would glow here
    np.testing.assert_array_equal(out[120, 160], frame[120, 160])


def test_video_background_loops_and_advances(tmp_path, scene):
    frame, alpha = scene
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    path = write_video(tmp_path / "bg.avi", [np.full((60, 80, 3), c, np.uint8) for c in colors], fps=100)
    bg = VideoBackground(path)
    seen = set()
    import time

    t_end = time.monotonic() + 0.5
    while time.monotonic() < t_end:               # ~50 frames of a 3-frame clip: must wrap around
        px = bg.render(frame, alpha)[30, 40]
        seen.add(int(np.argmax(px)))
        time.sleep(0.005)
    assert seen == {0, 1, 2}
    assert bg.render(frame, alpha).shape == frame.shape


def test_image_background_reads_alpha_png(tmp_path):
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 2] = 255
    rgba[..., 3] = 255
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), rgba)
    assert ImageBackground(path).image.shape == (10, 10, 3)


@pytest.mark.parametrize("text, kind, value, canonical", [
    ("none", "none", None, "none"),
    (" Blur ", "blur", 15, "blur:15"),
    ("blur:40", "blur", 40, "blur:40"),
    ("colour:2e8b57", "color", "#2E8B57", "color:#2E8B57"),
    ("green", "green", None, "green"),
    ("~/pictures/beach.jpg", "file", "~/pictures/beach.jpg", "~/pictures/beach.jpg"),
])
def test_background_specs_parse_and_write_back(text, kind, value, canonical):
    from bgswap.inference.background_spec import BackgroundSpec

    spec = BackgroundSpec.parse(text)
    assert (spec.kind, spec.value, str(spec)) == (kind, value, canonical)
    assert BackgroundSpec.parse(str(spec)) == spec


def test_background_spec_identity_matches_entries_not_strings(tmp_path):
    from bgswap.inference.background_spec import BackgroundSpec

    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.zeros((4, 4, 3), np.uint8))
    def identity(text):
        return BackgroundSpec.parse(text).identity

    assert identity("blur:3") == identity("blur:90")
    assert identity("blur:3") != identity("color:#000000")
    assert identity(str(img)) == identity(str(tmp_path / "." / "a.png"))
    for bad in ("blur:0", "blur:x", "color:#12", "nothing-like-a-file", ""):
        with pytest.raises(BackgroundError):
            BackgroundSpec.parse(bad)


def test_media_kinds():
    from bgswap.inference.media import media_kind

    assert [media_kind(p) for p in ("a.JPG", "b.webm", "c.txt", "d")] == ["image", "video", None, None]


@pytest.mark.parametrize("size", [(640, 480), (1280, 720), (1366, 768)])
def test_blending_only_the_edge_gives_the_whole_frame_blend(size):
    """The compositor copies where the matte is 0 or 1 and blends boxes round the edge: the same
    picture as blending every pixel, on a moving person with the shipped model's matte."""
    from bgswap.app.sources import open_source
    from bgswap.app.sources import CaptureRequest
    from bgswap.inference import Segmenter
    from bgswap.inference.refine import MaskRefiner

    w, h = size
    src = open_source("demo:walk", CaptureRequest(w, h, 30), realtime=False)
    src.open()
    seg, refiner = Segmenter(threads=1), MaskRefiner()
    bg = ColorBackground((200, 80, 20))
    for i in (20, 75):
        frame = src.frame_at(i)
        matte = refiner.matte(seg.predict_lowres(frame), frame)
        assert matte.work.shape[1] < w                      # the matte was made at a reduced size
        alpha = matte.full()
        assert 0.005 < float(((alpha > 0) & (alpha < 1)).mean()) < 0.2
        want = cv2.blendLinear(frame, bg.render(frame, alpha), alpha, 1.0 - alpha)
        out = Compositor()(frame, matte, bg)
        assert np.abs(out.astype(np.int16) - want).max() <= 1


def _room_and_person(h: int = 96, w: int = 128):
    """A red person (right half) in front of a green room, with a 4-px edge where the camera mixed them."""
    person, room = np.array([40, 40, 220], np.float32), np.array([40, 200, 40], np.float32)
    alpha = np.clip((np.arange(w, dtype=np.float32) - 62) / 4.0, 0, 1)[None, :].repeat(h, 0)
    frame = (alpha[..., None] * person + (1 - alpha[..., None]) * room + 0.5).astype(np.uint8)
    return frame, alpha, person


def test_decontamination_gives_the_edge_the_persons_colour():
    from bgswap.inference.refine import RefineSettings

    frame, alpha, person = _room_and_person()
    blue = ColorBackground((255, 0, 0))
    plain = Compositor(RefineSettings(decontaminate=False))(frame, alpha, blue)
    clean = Compositor(RefineSettings(decontaminate=True))(frame, alpha, blue)
    edge, faint = (alpha > 0.2) & (alpha < 0.8), (alpha > 0.2) & (alpha < 0.3)
    # the old room's green survives in the plain blend's edge; decontaminated, much less of it
    assert plain[edge][:, 1].mean() > 40
    assert clean[edge][:, 1].mean() < 0.75 * plain[edge][:, 1].mean()
    assert clean[faint][:, 1].mean() < 0.5 * plain[faint][:, 1].mean()     # most where the matte is faintest
    np.testing.assert_array_equal(clean[alpha == 1], plain[alpha == 1])     # inside: untouched
    np.testing.assert_array_equal(clean[alpha == 0], plain[alpha == 0])     # the background: untouched


def test_light_wrap_lights_the_outline_and_nothing_deep_inside():
    from bgswap.inference.refine import RefineSettings

    frame, alpha, _ = _room_and_person()
    blue = ColorBackground((255, 0, 0))
    off = Compositor(RefineSettings(light_wrap=0.0))(frame, alpha, blue).astype(np.int16)
    on = Compositor(RefineSettings(light_wrap=0.8))(frame, alpha, blue).astype(np.int16)
    just_inside, deep = on[:, 67:71, 0] - off[:, 67:71, 0], on[:, 110:, 0] - off[:, 110:, 0]
    assert just_inside.mean() > 10                          # blue light on the person's edge
    assert np.abs(deep).max() == 0                           # none far inside
    np.testing.assert_array_equal(on[alpha == 0], off[alpha == 0])


def test_both_together_keep_most_of_each_ones_effect():
    """Decontamination and light wrap together are one mix whose split between the person's colour and
    the light follows the edge grid: the faint edge still loses the room's green, and the outline is
    still lit, at least 0.7 of light wrap alone."""
    from bgswap.inference.refine import RefineSettings

    frame, alpha, _ = _room_and_person()
    blue = ColorBackground((255, 0, 0))
    plain = Compositor(RefineSettings())(frame, alpha, blue).astype(np.int16)
    clean = Compositor(RefineSettings(decontaminate=True))(frame, alpha, blue).astype(np.int16)
    wrap = Compositor(RefineSettings(light_wrap=0.8))(frame, alpha, blue).astype(np.int16)
    both = Compositor(RefineSettings(decontaminate=True, light_wrap=0.8))(frame, alpha, blue).astype(np.int16)
    faint = (alpha > 0.2) & (alpha < 0.3)
    assert both[faint][:, 1].mean() < 0.5 * plain[faint][:, 1].mean()
    opaque_edge = np.zeros_like(alpha, bool)
    opaque_edge[:, 67:71] = alpha[:, 67:71] >= 0.99
    lit_alone = (wrap - plain)[opaque_edge][:, 0].mean()
    assert lit_alone > 10 and (both - clean)[opaque_edge][:, 0].mean() > 0.7 * lit_alone


@pytest.mark.parametrize("size", [(960, 540), (1366, 768), (320, 240)])
def test_edge_colours_work_at_sizes_the_grid_does_not_divide(size):
    """Decontamination and light wrap at camera sizes that are not a multiple of their grid: the
    edge changes, the rest is the plain blend's."""
    from bgswap.inference.refine import RefineSettings

    w, h = size
    frame, alpha, _ = _room_and_person(h, w)
    alpha[: h // 3] = 0.0                                   # an edge across as well as down
    blue = ColorBackground((255, 0, 0))
    plain = Compositor(RefineSettings())(frame, alpha, blue)
    both = Compositor(RefineSettings(decontaminate=True, light_wrap=0.5))(frame, alpha, blue)
    assert both.shape == plain.shape
    changed = np.abs(both.astype(np.int16) - plain).max(axis=2) > 0
    assert changed.any() and not changed[alpha == 0].any()
    assert not changed[h // 3 + 40:, 66 + 40:].any()        # deep inside the person: untouched


def test_the_blur_hands_its_small_picture_to_light_wrap():
    """The blur background's light for light wrap comes from its own 1/8 picture (not its full-size
    result reduced again): the same composite to within a grey level or two."""
    from bgswap.inference.refine import RefineSettings

    frame, alpha, _ = _room_and_person(720, 1280)
    blur = BlurBackground(15)
    rendered = blur.render(frame, alpha)

    class Same:                              # the same picture, without the small one
        def render(self, frame, alpha, reduced=None):
            return rendered

    comp = RefineSettings(light_wrap=0.8)
    via_small = Compositor(comp)(frame, alpha, blur).astype(np.int16)
    assert blur.small is not None and blur.small[1] == 8
    reduced_again = Compositor(comp)(frame, alpha, Same()).astype(np.int16)
    assert np.abs(via_small - reduced_again).max() <= 2


def test_decontamination_takes_out_the_old_rooms_share_of_the_edge():
    """A textured person with a 1-px soft edge on a green room and on a magenta room, composited onto blue
    with the exact alpha: plainly the room shows in the edge (the two outputs differ); decontaminated
    (and with light wrap too) it mostly does not (bench_leak.py measures the same on real portraits)."""
    from bgswap.inference.refine import Matte, RefineSettings

    h, w = 360, 640
    person = np.clip(np.random.default_rng(0).normal((60, 90, 140), 12, (h, w, 3)), 0, 255).astype(np.float32)
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (320, 200), (120, 150), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(mask, (0, 0), 1.0)
    k = np.ones((13, 13), np.uint8)
    band = cv2.dilate(mask, k) - cv2.erode(mask, k) > 0
    outs: dict[str, list[np.ndarray]] = {}
    for room in ((60, 200, 60), (200, 60, 200)):
        frame = np.clip(person * alpha[..., None] + np.array(room, np.float32) * (1 - alpha[..., None]) + 0.5,
                        0, 255).astype(np.uint8)
        for name, st in (("plain", RefineSettings()), ("decontaminated", RefineSettings(decontaminate=True)),
                         ("both", RefineSettings(decontaminate=True, light_wrap=0.3))):
            outs.setdefault(name, []).append(Compositor(st)(frame, Matte.of(alpha, frame), ColorBackground((200, 80, 20))))
    leak = {name: float(cv2.absdiff(a, b).mean(axis=2)[band].mean()) for name, (a, b) in outs.items()}
    assert leak["plain"] > 3.0, leak
    assert leak["decontaminated"] < 0.3 * leak["plain"], leak
    assert leak["both"] < 0.4 * leak["plain"], leak


def test_switching_away_from_a_video_background_while_a_frame_is_drawn(tmp_path):
    """The GUI thread closes the old background while the frame thread may be reading its next frame:
    the capture is never released during a read, nor read after it was released."""
    import threading

    from bgswap.inference.backgrounds import VideoBackground

    path = tmp_path / "bg.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    bg = VideoBackground(path)
    real = bg._cap
    reading, problems = threading.Event(), []

    class SlowCapture:                      # a read that takes a while, as a real decoder's may
        released = False

        def read(self):
            if self.released:
                problems.append("read after release")
            reading.set()
            time.sleep(0.2)
            if self.released:
                problems.append("released during a read")
            return real.read()

        def set(self, *a):
            return real.set(*a)

        def release(self):
            self.released = True
            real.release()

    bg._cap = SlowCapture()
    bg._t0 = time.monotonic() - 1.0          # frames are due: the next render reads
    frame = np.zeros((48, 64, 3), np.uint8)
    drawer = threading.Thread(target=lambda: [bg.render(frame, None) for _ in range(3)])
    drawer.start()
    assert reading.wait(5)
    bg.close()                              # while the frame thread is inside a read
    drawer.join(10)
    assert bg.render(frame, None).shape == (48, 64, 3)     # after close: the last frame, no read
    assert problems == []
