"""A demo clip with real movement (``--source demo:walk``): the demo photo's person walks across a room,
sits down, turns and tilts their head, leans in, stands up and walks back; 12 s, looping.

Made at run time from the public-domain astronaut portrait and its person matte
(``assets/demo/astronaut_person.png``, the mean of four segmentation models' outputs, cleaned). The
room is the photo's own studio: its backdrop widened, the flag at the left, the model shuttle at the
right. The head is a layer of its own that turns about the neck, so the mask changes shape, not
only place: what a benchmark of a moving webcam needs (the plain demo clip mostly sways).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from bgswap.inference.backgrounds import cover_fit
from bgswap.inference.resources import assets_dir

from .sources import DEMO_PHOTO, CaptureRequest, RenderedClip, SourceError

PERSON_MATTE = assets_dir() / "demo" / "astronaut_person.png"
PERIOD_S = 12.0
NECK = (225.0, 172.0)          # in the 512 x 512 photo: the pivot the head turns about
HEAD_BOTTOM = 176              # rows above this (and within HEAD_X) are the head layer
HEAD_X = (135, 320)


def _smooth(x: float) -> float:
    """0 -> 1 ease-in-out on [0, 1], clamped."""
    x = min(1.0, max(0.0, x))
    return x * x * (3 - 2 * x)


@dataclass
class Pose:
    x: float        # the person's centre as a share of the frame's width
    drop: float     # how far they sat down, as a share of the frame's height
    scale: float    # 1 = standing at the usual distance; > 1 leaning in
    lean: float     # body rotation, degrees
    head: float     # head rotation about the neck, degrees


def _bump(t: float, start: float, end: float, ramp: float = 0.5) -> float:
    """1 between ``start`` and ``end``, easing in and out over ``ramp`` seconds, 0 elsewhere."""
    return _smooth((t - start) / ramp) - _smooth((t - end) / ramp)


def pose_at(t: float) -> Pose:
    """Where the person is ``t`` seconds into the clip (it loops every PERIOD_S); every term is
    smooth, so no frame jumps."""
    t %= PERIOD_S
    x = 0.3 + 0.4 * _smooth((t - 1.0) / 2.5) - 0.4 * _smooth((t - 9.0) / 2.5)
    walking = _bump(t, 1.0, 3.5) + _bump(t, 9.0, 11.5)
    seated = _smooth((t - 3.5) / 1.0) - _smooth((t - 8.0) / 1.0)
    talking = _bump(t, 4.5, 8.0)
    drop = 0.1 * seated - 0.012 * walking * (1 - math.cos(t * math.pi * 4.0)) / 2
    scale = 1.0 - 0.04 * seated + 0.12 * math.sin(math.pi * _smooth((t - 5.5) / 2.0))
    lean = walking * 3.0 * math.sin(t * math.pi * 2.0) + (1 - walking) * 2.5 * math.sin(t * 0.9)
    head = 14.0 * math.sin(t * 1.6) + talking * 6.0 * math.sin(t * 5.0)
    return Pose(x, drop, scale, lean, head)


def _studio(photo: np.ndarray, matte: np.ndarray) -> np.ndarray:
    """The photo's studio without the person, widened to 16:9 (1024 x 576): the mottled backdrop from a
    clean patch, the flag strip on the left and the shuttle on its table on the right."""
    rh, rw = 576, 1024
    patch = photo[0:40, 95:150]                          # backdrop between the flag and the head
    room = cv2.GaussianBlur(cv2.resize(patch, (rw, rh), interpolation=cv2.INTER_CUBIC), (0, 0), 6)
    ramp = np.linspace(1.0, 0.8, rh, dtype=np.float32)[:, None, None]     # darker towards the floor
    room = (room * ramp).astype(np.uint8)

    def paste(strip: np.ndarray, x0: int, fade_left: bool) -> None:
        sh, sw = strip.shape[:2]
        scale = rh / sh
        strip = cv2.resize(strip, (round(sw * scale), rh), interpolation=cv2.INTER_LINEAR)
        w = strip.shape[1]
        ramp_x = np.clip(np.arange(w) / 24.0 if fade_left else (w - 1 - np.arange(w)) / 24.0, 0, 1)
        a = ramp_x.astype(np.float32)[None, :, None]
        x0 = min(max(0, x0), rw - w)
        region = room[:, x0:x0 + w].astype(np.float32)
        room[:, x0:x0 + w] = (strip * a + region * (1 - a)).astype(np.uint8)

    top = photo[:280]                                    # above the person's arm and the helmet
    clear = (matte[:280] < 8).all(axis=0)
    flag_w = int(np.argmin(clear[:200]))                 # columns left of the person's first pixel
    paste(top[:, :max(40, flag_w - 4)], 0, fade_left=False)
    paste(top[:, 360:], rw, fade_left=True)
    return room


def _box(layer: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) round a layer's non-zero pixels."""
    x, y, w, h = cv2.boundingRect(cv2.findNonZero(layer))
    return x, y, x + w, y + h


class WalkingDemoSource(RenderedClip):
    """Frames of the walking demo at the requested size (``frame_at(i)``), paced like a camera."""

    def __init__(self, req: CaptureRequest, realtime: bool = True):
        super().__init__("demo:walk", req.fps, realtime)
        self.req = req
        self._layers: tuple | None = None
        self._boxes: list[tuple[int, int, int, int]] = []

    def open(self) -> None:
        photo = cv2.imread(str(DEMO_PHOTO), cv2.IMREAD_COLOR)
        matte = cv2.imread(str(PERSON_MATTE), cv2.IMREAD_GRAYSCALE)
        if photo is None or matte is None or photo.shape[:2] != matte.shape:
            raise SourceError(f"demo files {DEMO_PHOTO.name} / {PERSON_MATTE.name} are missing: reinstall the app")
        w, h = self.req.width, self.req.height
        room = cover_fit(_studio(photo, matte), w, h)
        head = np.zeros_like(matte)
        head[:HEAD_BOTTOM, HEAD_X[0]:HEAD_X[1]] = matte[:HEAD_BOTTOM, HEAD_X[0]:HEAD_X[1]]
        body = cv2.subtract(matte, head)
        self._layers = (room, photo, body, head)
        self._boxes = [_box(body), _box(head)]
        self._i = 0

    def _placed_layers(self, i: int):
        """For frame ``i``: each layer (body, then head) as (its alpha 0-1 in its box, the photo warped
        into the box, the box's slices in the frame)."""
        room, photo, body, head = self._layers
        h, w = room.shape[:2]
        p = pose_at(i / self.fps)
        s = h / 512.0 * 1.02 * p.scale                  # the photo's height fills the frame standing
        # body: rotate about the hips (bottom centre), scale, place the centre at x, the top at drop
        m = cv2.getRotationMatrix2D((256.0, 512.0), p.lean, s)
        m[0, 2] += p.x * w - 256.0
        m[1, 2] += h * (1.0 + p.drop) - 512.0 + 0.02 * h
        mh = np.vstack([m, [0, 0, 1]])
        turn = np.vstack([cv2.getRotationMatrix2D(NECK, p.head, 1.0), [0, 0, 1]])
        for layer, box, mat in ((body, self._boxes[0], mh), (head, self._boxes[1], mh @ turn)):
            # only the box the layer lands in is warped and blended
            x0, y0, x1, y1 = box
            corners = mat[:2] @ np.array([[x0, x1, x0, x1], [y0, y0, y1, y1], [1, 1, 1, 1]], np.float64)
            ox, oy = max(0, int(corners[0].min()) - 2), max(0, int(corners[1].min()) - 2)
            ex, ey = min(w, int(np.ceil(corners[0].max())) + 2), min(h, int(np.ceil(corners[1].max())) + 2)
            if ex <= ox or ey <= oy:
                continue
            shifted = mat[:2].copy()
            shifted[:, 2] -= (ox, oy)
            size = (ex - ox, ey - oy)
            a = cv2.multiply(cv2.warpAffine(layer, shifted, size, flags=cv2.INTER_LINEAR), 1 / 255.0, dtype=cv2.CV_32F)
            fg = cv2.warpAffine(photo, shifted, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            yield a, fg, (slice(oy, ey), slice(ox, ex))

    def frame_at(self, i: int) -> np.ndarray:
        out = self._layers[0].copy()
        for a, fg, box in self._placed_layers(i):
            out[box] = cv2.blendLinear(fg, out[box], a, 1.0 - a)
        return out

    def person_alpha_at(self, i: int) -> np.ndarray:
        """The true person alpha (float32 0-1, frame size) of frame ``i``: the layers' mattes as drawn."""
        room = self._layers[0]
        alpha = np.zeros(room.shape[:2], np.float32)
        for a, _fg, box in self._placed_layers(i):
            alpha[box] = a + alpha[box] * (1.0 - a)
        return alpha

    def _opened(self) -> bool:
        return self._layers is not None
