"""Auto-framing on a person who walks from one side of the room to the other and sits down."""
from __future__ import annotations

import cv2
import pytest
import numpy as np

from bgswap.inference.framing import AutoFramer

W, H = 1280, 720          # the output
MW, MH = 256, 144         # the model's mask


def person_mask(cx: float, top: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """A head and shoulders (cut by the bottom edge) centred at ``cx``, head top at ``top`` (shares)."""
    m = np.zeros((MH, MW), np.float32)
    jitter = rng.normal(0, 0.6, 2) if rng is not None else (0.0, 0.0)       # a seated person is never still
    x, y = cx * MW + jitter[0], top * MH + jitter[1]
    cv2.circle(m, (int(round(x)), int(round(y + 12))), 12, 1.0, -1)
    cv2.rectangle(m, (int(round(x - 30)), int(round(y + 22))), (int(round(x + 30)), MH), 1.0, -1)
    return m


def centre_in_output(framer: AutoFramer, person_cx: float) -> float:
    x0, _, cw, _ = framer.crop.rect(W, H)
    return (person_cx * W - x0) / cw / 1.0


def test_the_crop_follows_a_walk_and_holds_still_when_they_sit():
    framer = AutoFramer(max_zoom=1.5)
    rng = np.random.default_rng(0)
    xs = [0.28] * 30 + list(np.linspace(0.28, 0.72, 60)) + [0.72] * 90     # 30 fps: still, walk 2 s, sit 3 s
    tops = [0.35] * 30 + [0.35] * 60 + [0.45] * 90                          # sitting lowers the head
    rects, centres = [], []
    for i, (x, top) in enumerate(zip(xs, tops)):
        if i % 2 == 0:                                                      # a new mask every other frame
            framer.update(person_mask(x, top, rng))
        framer.step()
        rects.append(framer.crop.rect(W, H))
        centres.append(centre_in_output(framer, x))
    settled = range(90 + 30, len(xs))                                       # 1 s after sitting down
    off_centre = max(abs(centres[i] - 0.5) for i in settled)
    assert off_centre < 0.10, off_centre
    motion = max(max(abs(a - b) for a, b in zip(rects[i], rects[i - 1])) for i in range(90 + 45, len(xs)))
    assert motion < 1.0, motion                                             # pixels, frame to frame
    assert all(1.0 <= r for r in (W / rects[i][2] for i in range(len(xs))))


def test_it_never_zooms_past_its_limit_and_lets_an_empty_room_be_whole():
    framer = AutoFramer(max_zoom=1.5)
    far = np.zeros((MH, MW), np.float32)
    cv2.rectangle(far, (120, 100), (136, MH), 1.0, -1)                      # a small, far person
    for _ in range(90):
        framer.update(far)
        framer.step()
    assert abs(framer.crop.zoom - 1.5) < 1e-6
    for _ in range(90):
        framer.update(np.zeros((MH, MW), np.float32))
        framer.step()
    assert (framer.crop.cx, framer.crop.cy, framer.crop.zoom) == (0.5, 0.5, 1.0)
    frame = np.random.default_rng(1).integers(0, 255, (H, W, 3), dtype=np.uint8)
    assert framer.apply(frame) is frame                                     # no crop: the frame as it is


def test_the_crop_keeps_the_walking_demo_centred_once_seated():
    """On ``demo:walk`` with the shipped model's masks (every other frame, as Balanced runs): from 1 s
    after the person sits down, their true centre stays within 10 % of the output's width of the middle."""
    from bgswap.app.sources import CaptureRequest, open_source
    from bgswap.inference import Segmenter

    src = open_source("demo:walk", CaptureRequest(640, 360, 30), realtime=False)
    src.open()
    seg = Segmenter(threads=1)
    framer = AutoFramer(max_zoom=1.5)
    off = []
    for i in range(0, 7 * 30):                      # seated from 4.5 s; leaning and turning till 7.5 s
        if i % 2 == 0:
            prob = seg.predict_lowres(src.frame_at(i))
            framer.update(prob)
        framer.step()
        if i >= round(5.5 * 30):
            ys, xs = np.nonzero(src.person_alpha_at(i) > 0.5)        # where the person really is
            x0, _, cw, _ = framer.crop.rect(640, 360)
            off.append(abs((xs.mean() - x0) / cw - 0.5))
    assert max(off) < 0.10, max(off)


def _walk_framed(width: int, height: int):
    """On ``demo:walk`` (one 12 s loop, after one loop to settle), a true mask every other frame (as
    Balanced runs): per frame, the head's centre as a share of the output's width, and the crop."""
    from bgswap.app.sources import CaptureRequest, open_source

    src = open_source("demo:walk", CaptureRequest(width, height, 30), realtime=False)
    src.open()
    n = 12 * 30
    framer = AutoFramer(max_zoom=1.5)
    heads, rects = [], []
    for i in range(2 * n):
        alpha = src.person_alpha_at(i % n)
        if i % 2 == 0:
            framer.update(cv2.resize(alpha, (256, 144), interpolation=cv2.INTER_AREA))
        framer.step()
        if i >= n:
            top = int(np.nonzero(alpha.max(axis=1) > 0.5)[0][0])
            head = alpha[top:top + int(0.12 * height)].sum(axis=0)         # the head: the person's top rows
            x0, _, cw, _ = framer.crop.rect(width, height)
            heads.append(((head * np.arange(width)).sum() / head.sum() - x0) / cw)
            rects.append(framer.crop.rect(width, height))
    return heads, rects


@pytest.mark.parametrize("size", [(640, 360), (640, 480)])
def test_the_walking_head_stays_in_the_middle_of_the_picture(size):
    """Every frame of the walk, sit, lean and walk back: the head's centre within the middle 60 % of the width."""
    heads, _ = _walk_framed(*size)
    worst = max(abs(x - 0.5) for x in heads)
    assert worst < 0.30, worst


def test_the_crop_is_calm_while_the_walking_demo_sits():
    """Seated, talking and turning the head (4.7-5.5 s, before the lean-in): under 1 px of crop motion a frame."""
    _, rects = _walk_framed(640, 360)
    seated = range(round(4.7 * 30), round(5.5 * 30))
    motion = max(max(abs(a - b) for a, b in zip(rects[i], rects[i - 1])) for i in seated)
    assert motion < 1.0, motion
