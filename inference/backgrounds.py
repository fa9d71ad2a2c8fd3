"""The backgrounds a person is put on (image, looping video, blur, colour, none), read safely from files
and built from their text form (``parse_background``). ``compose.Compositor`` puts the person on one."""
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
from .refine import block_mean

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
        self._closed = False

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
            if not self._closed:             # closed (switched away from): the last frame, never a read
                self._advance()
            h, w = frame.shape[:2]
            if self._fitted is None or self._fitted.shape[:2] != (h, w):
                self._fitted = cover_fit(self._frame, w, h)
            return self._fitted

    def close(self) -> None:
        """Release the video; under the render lock, so a frame being drawn from it finishes first (the
        GUI thread switches backgrounds while the frame thread draws)."""
        with self._lock:
            self._closed = True
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
