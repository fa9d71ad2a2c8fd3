"""Objects beside the person: things that touch a person in a training scene but are not them.

A flag on a pole, a poster, a lamp or a cupboard door next to someone's shoulder is where a
portrait network learns "whatever touches the person is the person": the portraits' true masks
never show such an object, and the empty rooms show it without a person beside it. Here one or two
objects are put into the scene *behind* the person, overlapping their outline, and the target stays
the person's alone.

An object is either a piece of a training room (furniture, a window, a wall with a picture) or a
synthetic banner (stripes of saturated colours, sometimes with a canton, folds and a pole).
"""
from __future__ import annotations

import cv2
import numpy as np


def banner(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A ``h`` x ``w`` BGR banner or flag: 2-13 stripes of 2-3 colours, horizontal or vertical give or take
    0.5 rad, maybe a canton with stars, hanging in waves (the stripes bend) with the folds' shading."""
    colours = rng.integers(0, 256, (int(rng.integers(2, 4)), 3)).astype(np.float32)
    n = int(rng.integers(2, 14))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(0.2, 0.7) * w                        # the folds run down the banner
    phase = rng.uniform(0, 2 * np.pi)
    wave = np.sin(xx * 2 * np.pi / period + phase)
    bend = rng.uniform(0.0, 0.04) * h * wave                   # stripes dip and rise with the folds
    angle = rng.choice([0.0, np.pi / 2]) + rng.uniform(-0.5, 0.5)
    along = (yy + bend) * np.cos(angle) + xx * np.sin(angle)
    span = max(1.0, float(along.max() - along.min()))
    stripe = np.floor((along - along.min()) / span * n).astype(np.int64) % len(colours)
    img = colours[stripe]
    if rng.random() < 0.4:                                    # a canton in a top corner, sometimes with stars
        ch, cw = int(h * rng.uniform(0.25, 0.55)), int(w * rng.uniform(0.3, 0.5))
        x0 = 0 if rng.random() < 0.7 else w - cw
        img[:ch, x0:x0 + cw] = rng.integers(0, 256, 3)
        if rng.random() < 0.6 and ch > 4 and cw > 4:
            star = rng.integers(150, 256, 3).astype(np.float32)
            for _ in range(int(rng.integers(3, 20))):
                cv2.circle(img, (x0 + int(rng.integers(cw)), int(rng.integers(ch))),
                           max(1, min(ch, cw) // 12), star.tolist(), -1)
    folds = rng.uniform(0.0, 0.45)                            # light and shadow across the folds
    img *= (1 - folds * (0.5 + 0.5 * wave))[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _shape_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An object's outline in a ``h`` x ``w`` box (float32 0-1): a rectangle, an ellipse or a tilted quad."""
    m = np.zeros((h, w), np.float32)
    kind = rng.random()
    if kind < 0.5:
        m[:] = 1
    elif kind < 0.75:
        cv2.ellipse(m, (w // 2, h // 2), (max(1, w // 2), max(1, h // 2)), 0, 0, 360, 1.0, -1)
    else:
        jitter = lambda n: int(rng.integers(0, max(1, n // 5)))          # noqa: E731
        quad = np.array([[jitter(w), jitter(h)], [w - 1 - jitter(w), jitter(h)],
                         [w - 1 - jitter(w), h - 1 - jitter(h)], [jitter(w), h - 1 - jitter(h)]], np.int32)
        cv2.fillConvexPoly(m, quad, 1.0)
    return m


def make_object(rng: np.random.Generator, h: int, w: int, rooms: list[np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray]:
    """An ``h`` x ``w`` object (BGR, float32 alpha 0-1): a banner on a pole, or a piece of a room."""
    if not rooms or rng.random() < 0.5:
        img = banner(rng, h, w)
        alpha = np.ones((h, w), np.float32)
        if rng.random() < 0.6:                                  # the pole along one side
            pw = max(1, w // int(rng.integers(8, 20)))
            x = 0 if rng.random() < 0.5 else w - pw
            img[:, x:x + pw] = rng.integers(40, 220)
        return img, alpha
    room = rooms[int(rng.integers(len(rooms)))]
    rh, rw = room.shape[:2]
    ch, cw = max(4, int(rh * rng.uniform(0.2, 0.6))), max(4, int(rw * rng.uniform(0.15, 0.5)))
    y, x = int(rng.integers(0, rh - ch + 1)), int(rng.integers(0, rw - cw + 1))
    img = cv2.resize(room[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    return img, _shape_mask(rng, h, w)


def _soften(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The object's outline blurred by 0.4-1.2 px, its border fading to nothing as well."""
    return cv2.GaussianBlur(alpha, (0, 0), rng.uniform(0.4, 1.2), borderType=cv2.BORDER_CONSTANT)


def _paste(out: np.ndarray, obj: np.ndarray, alpha: np.ndarray, x: int, y: int,
           behind: np.ndarray | None = None) -> None:
    """Blend ``obj`` (alpha ``alpha``) into float ``out`` at (``x``, ``y``), clipped to it; under a person
    where ``behind`` (1 - their alpha, H x W x 1) says so."""
    H, W = out.shape[:2]
    h, w = alpha.shape
    sy0, sx0 = max(0, -y), max(0, -x)
    sy1, sx1 = min(h, H - y), min(w, W - x)
    if sy1 <= sy0 or sx1 <= sx0:
        return
    a = alpha[sy0:sy1, sx0:sx1, None]
    if behind is not None:
        a = a * behind[y + sy0:y + sy1, x + sx0:x + sx1]
    region = out[y + sy0:y + sy1, x + sx0:x + sx1]
    region[:] = obj[sy0:sy1, sx0:sx1] * a + region * (1 - a)


def _objects_anywhere(img: np.ndarray, rng: np.random.Generator, rooms: list[np.ndarray], count: int,
                      behind: np.ndarray) -> np.ndarray:
    """``img`` with ``count`` objects anywhere, half of them against the left or right side of the frame
    (where a person walking in would be cut), under whatever faint person ``behind`` leaves."""
    H, W = img.shape[:2]
    out = img.astype(np.float32)
    for _ in range(count):
        h, w = max(6, int(H * rng.uniform(0.3, 1.0))), max(6, int(W * rng.uniform(0.1, 0.35)))
        obj, alpha = make_object(rng, h, w, rooms)
        alpha = _soften(alpha, rng)
        if rng.random() < 0.5:
            x = -int(rng.uniform(0, 0.5) * w) if rng.random() < 0.5 else W - w + int(rng.uniform(0, 0.5) * w)
        else:
            x = int(rng.integers(-w // 2, W - w // 2))
        _paste(out, obj, alpha, x, int(rng.integers(-h // 3, max(1, H - h // 2))), behind)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def add_objects_behind(img: np.ndarray, target: np.ndarray, rng: np.random.Generator,
                       rooms: list[np.ndarray], count: int = 1) -> np.ndarray:
    """``img`` (BGR uint8) with ``count`` objects put behind the person of ``target`` (same size, 0-1:
    float, or a uint8 0/1 mask). Each goes on a row in the top 80 % of the person's height, across
    their left or right outline, where at least 6 px of background lie beside it (else it is left
    out). The person stays in front (their alpha covers the objects); the target is unchanged. With
    nobody in ``target`` the objects go anywhere, often against a side of the frame. Returns a new image."""
    person = target > 0.5
    H, W = target.shape
    behind = (1.0 - np.clip(target, 0, 1).astype(np.float32))[..., None]
    if not person.any():
        return _objects_anywhere(img, rng, rooms, count, behind)
    ys = np.nonzero(person.any(axis=1))[0]
    y0, y1 = ys.min(), ys.max() + 1
    out = img.astype(np.float32)
    for _ in range(count):
        yc = int(y0 + rng.uniform(0.0, 0.8) * (y1 - y0))        # the top 80 % of the person
        cols = np.nonzero(person[yc])[0]
        if not len(cols):
            continue
        gaps = {"left": cols[0], "right": W - 1 - cols[-1]}      # background beside the outline on that row
        side = max(gaps, key=lambda k: gaps[k] + rng.uniform(0, 0.3 * W))
        if gaps[side] < 6:
            continue
        h = max(6, int(H * rng.uniform(0.2, 0.7)))
        w = int(np.clip(W * rng.uniform(0.08, 0.35), 6, gaps[side] * 1.4))
        obj, alpha = make_object(rng, h, w, rooms)
        alpha = _soften(alpha, rng)
        overlap = int(rng.uniform(0.0, 0.4) * w)                 # how far the object runs behind the person
        x = int(cols[0] - w + overlap) if side == "left" else int(cols[-1] + 1 - overlap)
        _paste(out, obj, alpha, x, yc - int(rng.uniform(0.2, 0.8) * h), behind)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
