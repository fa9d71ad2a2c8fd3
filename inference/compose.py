"""Backgrounds and alpha compositing (uint8 in, uint8 out, OpenCV's fused blend)."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from .background_spec import BLUR_RANGE, DEFAULT_BLUR, BackgroundError, BackgroundSpec, parse_color
from .media import IMAGE_EXTS, VIDEO_EXTS, file_problem, media_kind
from .refine import Matte, RefineSettings, at_least, block_mean, mask_of

log = logging.getLogger(__name__)



class Background(Protocol):
    """Supplies what goes behind the person, at the frame's size."""

    kind: str
    label: str

    def render(self, frame: np.ndarray, alpha: np.ndarray, reduced: np.ndarray | None = None) -> np.ndarray | None:
        """A BGR uint8 image the size of ``frame``, or None to leave the frame as it is. ``alpha`` is the
        person's matte at the frame's size or a whole factor smaller; ``reduced``, when the caller has
        it, the frame reduced to the matte's size (a background made from the frame starts there)."""

    def close(self) -> None:
        """Release what the background holds open (a video file); it is not rendered again."""


class HoldsNothingOpen:
    """For backgrounds with nothing to release: ``close`` does nothing."""

    def close(self) -> None:
        pass


def cover_fit(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to cover ``width`` x ``height`` keeping the aspect ratio, centre-crop the rest."""
    h, w = img.shape[:2]
    s = max(width / w, height / h)
    nw, nh = max(width, round(w * s)), max(height, round(h * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(img, (nw, nh), interpolation=interp)
    x, y = (nw - width) // 2, (nh - height) // 2
    return np.ascontiguousarray(resized[y:y + height, x:x + width])


MAX_IMAGE_MP = 50.0          # a background over this many megapixels (8K is 33) is decoded reduced or refused
REDUCED_READ = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                8: cv2.IMREAD_REDUCED_COLOR_8}   # imdecode flags: libjpeg scales a JPEG down while decoding it


def reduction(width: int, height: int, max_mp: float) -> int | None:
    """The least of 1, 2, 4, 8 that brings ``width`` x ``height`` down to ``max_mp`` megapixels, or None
    when even 1/8 is larger."""
    return next((k for k in REDUCED_READ if width * height / (k * k) <= max_mp * 1e6), None)


def image_size(path: Path) -> tuple[str, int, int] | None:
    """(format, width, height) from the file's header alone, or None when Pillow cannot tell."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None             # Pillow's own bomb check would hide the size; ours follows
    try:
        with Image.open(path) as im:          # reads the header only
            return im.format or "", im.size[0], im.size[1]
    except Exception:
        return None


def read_image(path: str | Path, what: str = "background") -> np.ndarray:
    """Read an image as BGR uint8 (any path, alpha flattened); BackgroundError when unreadable. A JPEG
    over MAX_IMAGE_MP is decoded at 1/2, 1/4 or 1/8 of its size; another format that large is refused
    before it is decoded (a small PNG can hold gigabytes of pixels), and so is a file whose header
    does not tell its size. ``what`` names the file in messages ("background", "image source")."""
    path = Path(path)
    problem = file_problem(path, f"{what} file")      # stat only: a FIFO is never opened
    if problem:
        raise BackgroundError(problem)
    flags = cv2.IMREAD_UNCHANGED
    head = image_size(path)
    if head is None:              # its size cannot be checked before decoding: OpenCV would take gigapixels
        raise BackgroundError(f"{what} {path} is not a readable image (supported: "
                              f"{', '.join(sorted(IMAGE_EXTS))})")
    if head[1] * head[2] > MAX_IMAGE_MP * 1e6:
        fmt, w, h = head
        factor = reduction(w, h, MAX_IMAGE_MP)
        if fmt != "JPEG" or factor is None:
            raise BackgroundError(f"{what} {path.name} is {w}x{h} ({w * h / 1e6:.0f} megapixels); the limit is "
                                  f"{MAX_IMAGE_MP:g}: scale it down (a 4K picture, 3840x2160, is plenty)")
        flags = REDUCED_READ[factor]
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, flags) if data.size else None
    if img is None:
        raise BackgroundError(f"{what} {path} is not a readable image (supported: "
                              f"{', '.join(sorted(IMAGE_EXTS))})")
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(1, int(img.max())))
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        a = img[..., 3:4].astype(np.float32) / 255.0
        img = (img[..., :3] * a + 255 * (1 - a)).astype(np.uint8)
    return img


MAX_BACKGROUND_SIZE = (3840, 2160)     # kept when the output size is not known: 4K covers every preset


def shrink_to_cover(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """``img`` scaled down (never up) to the least size that still covers ``width`` x ``height``."""
    h, w = img.shape[:2]
    s = max(width / w, height / h)
    if s >= 1:
        return img
    return cv2.resize(img, (max(width, round(w * s)), max(height, round(h * s))), interpolation=cv2.INTER_AREA)


class ImageBackground(HoldsNothingOpen):
    """A still picture, cover-fitted to the frame. Only what ``fit`` (the output size) needs is kept
    in memory: a 20000 x 20000 photo behind a 640 x 480 output holds 640 x 640, not 1.2 GB."""

    kind = "image"

    def __init__(self, path: str | Path | None = None, image: np.ndarray | None = None, label: str | None = None,
                 fit: tuple[int, int] | None = None):
        self.image = shrink_to_cover(read_image(path) if image is None else image, *(fit or MAX_BACKGROUND_SIZE))
        self.path = Path(path) if path is not None else None
        self.label = label or (self.path.name if self.path else "image")
        self._fitted: np.ndarray | None = None

    def render(self, frame, alpha, reduced=None):
        h, w = frame.shape[:2]
        if self._fitted is None or self._fitted.shape[:2] != (h, w):
            self._fitted = cover_fit(self.image, w, h)
        return self._fitted


class VideoBackground:
    """A looping video, played at its own frame rate whatever the camera's."""

    kind = "video"

    def __init__(self, path: str | Path, label: str | None = None):
        self.path = Path(path)
        problem = file_problem(self.path, "background video")
        if problem:
            raise BackgroundError(problem)
        self._cap = cv2.VideoCapture(str(self.path))
        ok, first = self._cap.read() if self._cap.isOpened() else (False, None)
        if not ok or first is None:
            self._cap.release()
            raise BackgroundError(f"background {self.path} is not a readable video (supported: "
                                  f"{', '.join(sorted(VIDEO_EXTS))})")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1 <= fps <= 240 else 30.0
        self.label = label or self.path.name
        self._frame = first
        self._fitted: np.ndarray | None = None
        self._t0: float | None = None
        self._shown = 0
        self._lock = threading.Lock()

    def _advance(self) -> None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        due = int((now - self._t0) * self.fps)
        steps = 0
        while self._shown < due and steps < 4:  # never spend long catching up
            ok, f = self._cap.read()
            if not ok:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, f = self._cap.read()
                if not ok:
                    break
            self._frame, self._fitted = f, None
            self._shown += 1
            steps += 1
        if self._shown < due:
            self._shown = due

    def render(self, frame, alpha, reduced=None):
        with self._lock:
            self._advance()
            h, w = frame.shape[:2]
            if self._fitted is None or self._fitted.shape[:2] != (h, w):
                self._fitted = cover_fit(self._frame, w, h)
            return self._fitted

    def close(self) -> None:
        self._cap.release()


class BlurBackground(HoldsNothingOpen):
    """The room itself, blurred, with the person cut out first so no halo bleeds around them."""

    kind = "blur"

    def __init__(self, strength: int = DEFAULT_BLUR):
        if not BLUR_RANGE[0] <= int(strength) <= BLUR_RANGE[1]:
            raise BackgroundError(f"blur strength must be between {BLUR_RANGE[0]} and {BLUR_RANGE[1]}")
        self.strength = int(strength)
        self.label = f"Blur {self.strength}"
        self.small: tuple[np.ndarray, int] | None = None   # the last result before scaling up, and its factor

    def render(self, frame, alpha, reduced=None):
        h, w = frame.shape[:2]
        # The blur's sigma at full size is 2 x strength pixels. Blur at 1/f of the size, f = 4 up to
        # strength 11, else 8 (a power of two: webcam sizes divide by it, OpenCV's fast path for
        # pixel averaging): the small blur's sigma stays 2-4 small pixels, which upscales smoothly;
        # the same look for 16-64x fewer pixels.
        f = 4 if self.strength < 12 else 8
        sw, sh = max(1, w // f), max(1, h // f)
        source = frame
        if reduced is not None and reduced.shape[1] >= sw and w % reduced.shape[1] == 0:
            source = reduced             # the same pixel averages from a quarter of the pixels (or fewer)
        k = source.shape[1] // sw
        whole = source.shape[:2] == (sh * k, sw * k)
        small = (block_mean(source, k, by_halves=True) if whole else
                 cv2.resize(source, (sw, sh), interpolation=cv2.INTER_AREA)).astype(np.float32)
        bgw = 1.0 - cv2.resize(alpha, (sw, sh), interpolation=cv2.INTER_AREA)
        sigma = self.strength * 2.0 / f
        num = cv2.GaussianBlur(small * bgw[..., None], (0, 0), sigma)
        den = cv2.GaussianBlur(bgw, (0, 0), sigma)[..., None]
        # Normalised convolution: average only background pixels; where there are none nearby,
        # fall back to the plain blur.
        plain = cv2.GaussianBlur(small, (0, 0), sigma)
        out = np.where(den > 0.02, num / np.maximum(den, 1e-6), plain)
        small8 = np.clip(out, 0, 255).astype(np.uint8)
        self.small = (small8, f) if (sh, sw) == (h // f, w // f) else None   # for the compositor's light wrap
        return cv2.resize(small8, (w, h), interpolation=cv2.INTER_LINEAR)


class ColorBackground(HoldsNothingOpen):
    kind = "color"

    def __init__(self, bgr: tuple[int, int, int], label: str | None = None):
        self.bgr = tuple(int(c) for c in bgr)
        self.label = label or "#%02X%02X%02X" % (self.bgr[2], self.bgr[1], self.bgr[0])
        self._img: np.ndarray | None = None

    def render(self, frame, alpha, reduced=None):
        if self._img is None or self._img.shape != frame.shape:
            self._img = np.empty_like(frame)
            self._img[:] = self.bgr
        return self._img


class NoBackground(HoldsNothingOpen):
    """Leave the camera image as it is."""

    kind = "none"
    label = "None"

    def render(self, frame, alpha, reduced=None):
        return None


def parse_background(spec: "str | BackgroundSpec", fit: tuple[int, int] | None = None) -> Background:
    """Build the background a spec names (see ``BackgroundSpec``); BackgroundError when it cannot.
    ``fit``: the output size (width, height), so a large image keeps only what it needs."""
    bs = BackgroundSpec.parse(spec)
    if bs.kind == "none":
        return NoBackground()
    if bs.kind == "green":
        return ColorBackground((0, 255, 0), "Green screen")
    if bs.kind == "blur":
        return BlurBackground(int(bs.value))
    if bs.kind == "color":
        return ColorBackground(parse_color(str(bs.value)))
    path = bs.path
    kind = media_kind(path)
    if kind == "video":
        return VideoBackground(path)
    if kind == "image":
        return ImageBackground(path, fit=fit)
    try:
        return ImageBackground(path, fit=fit)
    except BackgroundError:
        return VideoBackground(path)


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
