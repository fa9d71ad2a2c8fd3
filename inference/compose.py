"""Alpha compositing of the person onto a background (uint8 in, uint8 out, OpenCV's fused blend), with the
edge's clean colours (decontamination) and the new background's light (light wrap) worked out in one
band round the outline."""
from __future__ import annotations

import logging

import cv2
import numpy as np

from .backgrounds import Background
from .refine import Matte, RefineSettings, at_least, block_mean, mask_of

log = logging.getLogger(__name__)


EDGE_STRIP = 32      # working-size rows per strip when boxing the matte's edge
EDGE_GRID = 8        # decontamination and light wrap are worked out on the frame reduced ~this much
COLOUR_REACH = 1.0   # sigma, in pixels of that grid, of the blur that finds the person's own colour (~8 px)
WRAP_REACH = 0.75    # sigma, in pixels of that grid, of the light wrap's spill (~6 px at full size)
WRAP_GROW = 1.5      # the light wrap works this many of its sigmas into the person (its spill is ~7 % there)


def edge_band(work_alpha: np.ndarray, grow: int = 0) -> np.ndarray:
    """uint8 0/255 at the working size: pixels next to both some person (alpha > 0) and some background
    (alpha < 1), which also catches a step from 0 straight to 1, and one pixel round them (scaling up
    blends a pixel with its neighbours); and ``grow`` pixels more into the person."""
    k = np.ones((3, 3), np.uint8)
    person = mask_of(work_alpha > 0)            # numpy, not cv2.compare with a number: see mask_of
    near_room = cv2.dilate(mask_of(work_alpha < 1), k)
    band = cv2.dilate(cv2.bitwise_and(cv2.dilate(person, k), near_room), k)
    if grow:
        inside = cv2.bitwise_and(cv2.dilate(band, np.ones((1 + 2 * grow, 1 + 2 * grow), np.uint8)), person)
        band = cv2.bitwise_or(band, cv2.dilate(inside, k))
    return band


def edge_boxes(band: np.ndarray, factor_y: float, factor_x: float, size: tuple[int, int],
               strip: int = EDGE_STRIP) -> list[tuple[slice, slice]]:
    """Boxes at the frame's size (``size``: height, width) that hold every pixel of a working-size
    ``band`` scaled up by the factors: per strip of working rows, the runs of columns it covers."""
    h, w = size
    boxes = []
    for r0 in range(0, band.shape[0], strip):
        cols = band[r0:r0 + strip].max(axis=0)
        if not cols[cols.argmax()]:
            continue
        step = np.diff(np.concatenate(([0], (cols > 0).view(np.int8), [0])))
        y0, y1 = int(r0 * factor_y), min(h, int(np.ceil((r0 + strip) * factor_y)) + 1)
        for c0, c1 in zip(np.flatnonzero(step == 1), np.flatnonzero(step == -1)):
            x0, x1 = max(0, int(c0 * factor_x) - 1), min(w, int(np.ceil(c1 * factor_x)) + 1)
            boxes.append((slice(y0, y1), slice(x0, x1)))
    return boxes


def _box_of(small: np.ndarray, ys: slice, xs: slice, g: int) -> np.ndarray:
    """The part of ``small`` (the frame reduced by the whole factor ``g``) under a frame box, scaled up
    bilinearly as a whole-frame resize would (a one-pixel margin keeps the borders the same)."""
    sh, sw = small.shape[:2]
    gy0, gx0 = max(0, ys.start // g - 1), max(0, xs.start // g - 1)
    gy1, gx1 = min(sh, -(-ys.stop // g) + 1), min(sw, -(-xs.stop // g) + 1)
    up = cv2.resize(small[gy0:gy1, gx0:gx1], ((gx1 - gx0) * g, (gy1 - gy0) * g), interpolation=cv2.INTER_LINEAR)
    return up[ys.start - gy0 * g:ys.stop - gy0 * g, xs.start - gx0 * g:xs.stop - gx0 * g]


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _reduce(img: np.ndarray, factor: int, by_halves: bool = False) -> np.ndarray:
    """``img`` reduced by the whole ``factor`` (pixel averages of ``factor`` x ``factor`` blocks from
    the top left), with one more row and column continued from the edge, so it covers all of ``img``
    even when the factor does not divide its size."""
    return cv2.copyMakeBorder(block_mean(img, factor, by_halves) if factor > 1 else img, 0, 1, 0, 1,
                              cv2.BORDER_REPLICATE)


class Compositor:
    """out = alpha * person + (1 - alpha) * background. Where the matte is 0 or 1 the background or the
    frame is copied; only boxes round its edge are blended, so the cost follows the edge's length
    rather than the frame's pixel count.

    ``decontaminate``: edge pixels lose the old room's share of their colour: each keeps ``a`` of its own
    colour and takes the rest from the person's own colour pushed away from the room's (blur fusion's
    foreground estimate; see ``_edge_colours``). ``light_wrap`` (0-1): the new background, blurred, spills
    onto the person's outer edge as compositors do. Both are worked out on a grid ~EDGE_GRID times
    smaller than the frame and scaled up inside the edge's boxes only; per box they add two resizes
    of that grid, one or two operations for the share each pixel keeps and one blend."""

    def __init__(self, settings: RefineSettings | None = None) -> None:
        self.settings = settings or RefineSettings()
        self._bg_seen: np.ndarray | None = None      # the background last reduced (held: no other array takes its id)
        self._bg_light: np.ndarray | None = None
        self._bg_factor = 0

    def __call__(self, frame: np.ndarray, alpha: "np.ndarray | Matte", background: Background) -> np.ndarray:
        matte = alpha if isinstance(alpha, Matte) else Matte.of(alpha, frame)
        bg = background.render(frame, matte.work, reduced=matte.work_frame)
        if bg is None:
            return frame
        out = bg.copy()
        cv2.copyTo(frame, matte.person_mask(), out)
        h, w = matte.size
        wh, ww = matte.work.shape
        s = self.settings
        k = max(1, round(w / ww))                    # working size -> frame
        g = k * max(1, round(EDGE_GRID / k))         # the grid of the edge's colours -> frame
        edge = self._edge_colours(s, matte, bg, k, g, getattr(background, "small", None))
        grow = round(WRAP_GROW * WRAP_REACH * g / k) if edge is not None and edge[1] is not None else 0
        for ys, xs in edge_boxes(edge_band(matte.work, grow), h / wh, w / ww, (h, w)):
            a = matte.full_in(ys, xs)
            inv = 1.0 - a
            fg = frame[ys, xs]
            if edge is not None:         # edge pixels keep a share u of their own colour, the rest the edge colour's
                colour, keep = edge
                if keep is None:         # decontamination alone: u = a
                    u = a
                elif s.decontaminate:    # both: u = a (1 - wrap (1 - spread)); ``keep``: 255 x that factor
                    u = cv2.multiply(a, _box_of(keep, ys, xs, g), scale=1 / 255.0, dtype=cv2.CV_32F)
                else:                    # light wrap alone: u = 1 - a wrap (1 - spread)
                    u = np.subtract(np.float32(1.0), cv2.multiply(a, _box_of(keep, ys, xs, g), scale=1 / 255.0, dtype=cv2.CV_32F))
                fg = cv2.blendLinear(fg, _box_of(colour, ys, xs, g), u, inv if u is a else np.subtract(np.float32(1.0), u))
            out[ys, xs] = cv2.blendLinear(fg, bg[ys, xs], a, inv)
        return out

    def _edge_colours(self, s: RefineSettings, matte: Matte, bg: np.ndarray, k: int, g: int,
                      bg_small: tuple[np.ndarray, int] | None = None):
        """On the frame reduced by ``g``, for the settings ``s`` (read once per frame: the window may swap
        them meanwhile): (the colour edge pixels move towards, uint8; with light wrap, the per-cell
        factor that gives each pixel's own share ``u`` from its alpha (see ``__call__``), else None), or None
        when neither step is on.

        Decontamination's colour is the person's own (``own``: a blur of the frame where alpha ~ 1,
        normalised by a blur of that mask) pushed away from the room's (``room``: the same where alpha ~ 0)
        by the alpha, ``own + a (own - room)``: with ``u = a`` the pixel becomes ``a I + (1 - a) own +
        a (1 - a) (own - room)``, blur fusion's foreground estimate (Germer et al. 2020) with the alpha as the
        pixel's share of person, which takes out the room's share ``(1 - a) room`` rather than only
        diluting it. Light wrap mixes in the background's blurred light by ``spill = strength * a * (1 -
        blurred a)``. Both together are one mix with the frame, the frame keeping ``u = a (1 - S)``
        (``S = strength (1 - blurred a)``: the spill with ``a`` for ``a^2``, a little stronger just inside the
        outline than light wrap alone) and the rest going to ``((1 - a) T + a S light) / (1 - a + a S)``,
        worked out here with the grid's alpha (one blend a box instead of two)."""
        if not (s.decontaminate or s.light_wrap > 0) or min(matte.work.shape) < g // k:
            return None
        f = g // k
        a_small = _reduce(matte.work, f)
        target = None
        if s.decontaminate:
            frame_small = _reduce(matte.work_frame, f, by_halves=True).astype(np.float32)

            def blur_where(sure: np.ndarray) -> np.ndarray:
                """A blur of the frame where ``sure``, normalised by a blur of ``sure`` (the frame as it is
                where ``sure`` is nowhere near)."""
                num = cv2.GaussianBlur(cv2.bitwise_and(frame_small, frame_small, mask=sure), (0, 0), COLOUR_REACH)
                den = cv2.GaussianBlur(cv2.multiply(sure, 1 / 255.0, dtype=cv2.CV_32F), (0, 0), COLOUR_REACH)
                np.maximum(den, np.float32(1e-3), out=den)
                out = cv2.divide(num, cv2.merge([den, den, den]))
                cv2.copyTo(frame_small, mask_of(den <= np.float32(1e-3)), out)
                return out

            own = blur_where(at_least(a_small, 0.98))
            room = blur_where(mask_of(a_small <= np.float32(0.02)))
            target = cv2.scaleAdd(cv2.multiply(cv2.subtract(own, room), cv2.merge([a_small, a_small, a_small])), 1.0, own)
        if s.light_wrap <= 0:
            return _to_uint8(target), None
        light = self._background_light(bg, g, bg_small)
        spread = cv2.GaussianBlur(a_small, (0, 0), WRAP_REACH)
        if target is None:               # 255 wrap (1 - spread)
            return light, cv2.convertScaleAbs(spread, alpha=-255.0 * s.light_wrap, beta=255.0 * s.light_wrap)
        strength = np.subtract(np.float32(1.0), spread)
        strength *= np.float32(s.light_wrap)
        colour = cv2.blendLinear(_to_uint8(target), light, np.subtract(np.float32(1.0), a_small),
                                 cv2.multiply(a_small, strength))
        return colour, cv2.convertScaleAbs(strength, alpha=-255.0, beta=255.0)

    def _background_light(self, bg: np.ndarray, g: int, bg_small: tuple[np.ndarray, int] | None = None) -> np.ndarray:
        """``bg`` reduced by ``g`` and blurred by the wrap's reach; kept while the background is the same
        picture (an image or a colour), made anew for one that changes (video, blur). A background that
        was itself made at 1/g of the frame (``bg_small``: the blur's small picture and its factor) hands
        that over instead of having its full-size result reduced again."""
        if bg is not self._bg_seen or g != self._bg_factor:
            small = _reduce(bg_small[0], 1) if bg_small is not None and bg_small[1] == g else _reduce(bg, g)
            self._bg_light, self._bg_seen, self._bg_factor = cv2.GaussianBlur(small, (0, 0), WRAP_REACH), bg, g
        return self._bg_light
