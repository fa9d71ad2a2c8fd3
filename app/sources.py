"""Frame sources: cameras, video files, still images and the built-in demo clip."""
from __future__ import annotations

import contextlib
import glob
import logging
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

import cv2
import numpy as np

from bgswap.inference.media import file_problem, media_kind
from bgswap.inference.resources import assets_dir

log = logging.getLogger(__name__)

DEMO_PHOTO = assets_dir() / "demo" / "astronaut.jpg"


class SourceError(RuntimeError):
    """A source cannot be opened or read; the message names it and suggests a fix."""


class Source(Protocol):
    name: str
    fps: float
    live: bool          # a device that can disappear and come back (retry), not a file
    last_wait: float    # seconds the last read() slept to keep its frame rate (not work)

    def open(self) -> None: ...
    def read(self) -> np.ndarray | None: ...
    def close(self) -> None: ...


@contextlib.contextmanager
def opencv_quiet() -> Iterator[None]:
    """OpenCV's own log limited to errors while probing devices (its warnings repeat on every retry)."""
    lg = cv2.utils.logging
    old = lg.getLogLevel()
    lg.setLogLevel(lg.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        lg.setLogLevel(old)


@dataclass
class CaptureRequest:
    width: int = 640
    height: int = 480
    fps: float = 30.0


NATURAL_LIMIT = (1920, 1080)    # a file's own size as the output, scaled down to fit this (either way round)


def fit_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """``frame`` at ``width`` x ``height`` without distortion: scaled to fit, the rest black (letterbox or
    pillarbox). A frame already that size is returned as it is."""
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.zeros((height, width) + frame.shape[2:], frame.dtype)
    x, y = (width - nw) // 2, (height - nh) // 2
    out[y:y + nh, x:x + nw] = small
    return out


def source_file(spec: str) -> Path | None:
    """The file a source spec names (None for the demos, a camera index or /dev/videoN)."""
    s = str(spec).strip()
    if s in ("demo", "demo:walk") or s.isdigit() or s.startswith("/dev/video"):
        return None
    return Path(s).expanduser()


def natural_size(spec: str, limit: tuple[int, int] = NATURAL_LIMIT) -> tuple[int, int] | None:
    """A file source's own frame size (an image's header, a video's stream), scaled down to fit ``limit``
    (landscape or portrait) and made even (video encoders and virtual cameras want even sizes);
    None for cameras and the demos, or a file that cannot be read (opening it says why)."""
    path = source_file(spec)
    if path is None or not path.is_file():
        return None
    size = None
    if media_kind(path) == "image":
        try:
            from PIL import Image

            with Image.open(path) as im:        # the header only
                size = im.size
        except Exception:
            return None
    else:
        with opencv_quiet():
            cap = cv2.VideoCapture(str(path))
            try:
                if cap.isOpened():
                    size = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            finally:
                cap.release()
    if not size or min(size) < 2:
        return None
    w, h = size
    lw, lh = limit if w >= h else limit[::-1]
    scale = min(1.0, lw / w, lh / h)
    return max(16, round(w * scale / 2) * 2), max(16, round(h * scale / 2) * 2)


class CameraSource:
    """A webcam by index (``0``) or device path (``/dev/video0``), MJPG where offered."""

    live = True
    last_wait = 0.0     # the driver paces a camera; read() blocks on it, which is capture time

    def __init__(self, device: int | str, req: CaptureRequest):
        self.device = device
        self.req = req
        self.fps = req.fps
        self.name = f"camera {device}"
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        api = cv2.CAP_V4L2 if platform.system() == "Linux" else cv2.CAP_ANY
        with opencv_quiet():          # a missing camera is reported once by the engine, not per retry
            cap = cv2.VideoCapture(self.device, api)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self.name} could not be opened: check that it is connected and not in use "
                              "by another program (or use --source demo)")
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.req.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.req.height)
        cap.set(cv2.CAP_PROP_FPS, self.req.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1 <= fps <= 240 else self.req.fps
        self._cap = cap
        log.info("%s: %dx%d @ %.0f fps", self.name, cap.get(cv2.CAP_PROP_FRAME_WIDTH),
                 cap.get(cv2.CAP_PROP_FRAME_HEIGHT), self.fps)

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        ok, frame = self._cap.read()
        return frame if ok and frame is not None else None

    def skip(self) -> bool:
        """Take the next frame from the driver without decoding it (cheap: for idle times)."""
        return self._cap is not None and bool(self._cap.grab())

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class _Paced:
    """Sleeps so a file-like source delivers frames at its own rate, like a camera."""

    def __init__(self, fps: float):
        self.period = 1.0 / max(1.0, fps)
        self.next_t = 0.0
        self.last_wait = 0.0   # seconds slept in the last wait (not work: kept out of the stage times)

    def wait(self) -> None:
        now = time.monotonic()
        self.last_wait = max(0.0, self.next_t - now)
        if self.last_wait:
            time.sleep(self.last_wait)
        else:
            self.next_t = now  # fell behind: carry on from now, no burst of catch-up frames
        self.next_t += self.period


class _PacedSource:
    """A source that sleeps to play at its frame rate; the sleep is reported, not timed as work."""

    _pace: _Paced | None = None

    @property
    def last_wait(self) -> float:
        return self._pace.last_wait if self._pace is not None else 0.0


class VideoFileSource(_PacedSource):
    """A video file played in a loop at its own frame rate, fitted to the requested size without
    distortion (the natural size, the file's own, needs no fitting: ``natural_size``)."""

    live = False

    def __init__(self, path: str | Path, req: CaptureRequest, loop: bool = True, realtime: bool = True):
        self.path = Path(path)
        self.name = f"video {self.path.name}"
        self.loop, self.realtime = loop, realtime
        self.fps = req.fps
        self.size = (req.width, req.height)          # frames are fitted to this
        self._cap: cv2.VideoCapture | None = None
        self._pace: _Paced | None = None

    def open(self) -> None:
        problem = file_problem(self.path, "video source")
        if problem:
            raise SourceError(problem)
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise SourceError(f"video source {self.path} cannot be decoded")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1 <= fps <= 240 else self.fps
        self._cap, self._pace = cap, _Paced(self.fps)

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        if self.realtime:
            self._pace.wait()
        ok, frame = self._cap.read()
        if not ok and self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        return fit_frame(frame, *self.size) if ok and frame is not None else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class StillSource(_PacedSource):
    """One image, repeated at the requested rate (frames are copies: consumers may draw on them), fitted
    to the requested size without distortion (letterboxed when its shape differs)."""

    live = False

    def __init__(self, image: np.ndarray | None, req: CaptureRequest, name: str = "image", path: Path | None = None,
                 realtime: bool = True):
        self.path = path
        self.realtime = realtime
        self.image = image
        self.req = req
        self.fps = req.fps
        self.name = name
        self._pace = _Paced(self.fps)

    def open(self) -> None:
        if self.image is None and self.path is not None:
            from bgswap.inference.backgrounds import BackgroundError, read_image

            try:        # the backgrounds' reader: not a FIFO, and its size checked before decoding (MAX_IMAGE_MP)
                img = read_image(self.path, what="image source")
            except BackgroundError as exc:
                raise SourceError(str(exc)) from None
            self.image = fit_frame(img, self.req.width, self.req.height)

    def read(self) -> np.ndarray | None:
        if self.realtime:
            self._pace.wait()
        return self.image.copy()

    def close(self) -> None:
        pass


class RenderedClip(_PacedSource):
    """A clip made frame by frame at run time (``frame_at(i)``), paced like a camera when ``realtime``."""

    live = False

    def __init__(self, name: str, fps: float, realtime: bool = True):
        self.name, self.fps, self.realtime = name, fps, realtime
        self._pace = _Paced(fps)
        self._i = 0

    def frame_at(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def _opened(self) -> bool:
        raise NotImplementedError

    def read(self) -> np.ndarray | None:
        if not self._opened():
            return None
        if self.realtime:
            self._pace.wait()
        f = self.frame_at(self._i)
        self._i += 1
        return f

    def close(self) -> None:
        pass


class DemoSource(RenderedClip):
    """A moving portrait made at run time from a public-domain photo (NASA's astronaut portrait).

    The camera slowly pans, zooms and sways, so the person moves in the frame as
    they would in front of a webcam; no webcam or video file is needed.
    """

    def __init__(self, req: CaptureRequest, photo: Path = DEMO_PHOTO, realtime: bool = True):
        super().__init__("demo", req.fps, realtime)
        self.req = req
        self.photo = photo
        self._img: np.ndarray | None = None

    def open(self) -> None:
        img = cv2.imread(str(self.photo), cv2.IMREAD_COLOR)
        if img is None:
            raise SourceError(f"demo photo {self.photo} is missing: reinstall the app")
        self._img = img
        self._i = 0

    def frame_at(self, i: int) -> np.ndarray:
        w, h = self.req.width, self.req.height
        t = i / self.fps
        ih, iw = self._img.shape[:2]
        cover = max(w / iw, h / ih)
        zoom = cover * (1.06 + 0.04 * math.sin(t * 0.7))
        angle = 2.5 * math.sin(t * 1.1)
        # Look at the upper body (the photo's upper half), swaying like a person at a desk.
        cx = iw * (0.5 + 0.04 * math.sin(t * 0.45))
        cy = ih * (0.36 + 0.02 * math.sin(t * 0.9 + 1.0))
        m = cv2.getRotationMatrix2D((cx, cy), angle, zoom)
        m[0, 2] += w / 2 - cx
        m[1, 2] += h / 2 - cy
        return cv2.warpAffine(self._img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)

    def _opened(self) -> bool:
        return self._img is not None


def to_bgr_frame(frame: np.ndarray | None) -> np.ndarray | None:
    """A source's frame as HxWx3 uint8 BGR: grey and BGRA are converted, 16-bit and float scaled;
    None for None or for something that is not a picture."""
    if frame is None or not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3) or min(frame.shape[:2]) < 1:
        return None
    if frame.dtype != np.uint8:
        if frame.dtype == np.uint16:
            frame = (frame >> 8).astype(np.uint8)
        elif np.issubdtype(frame.dtype, np.floating):
            scale = 255.0 if float(np.nanmax(frame)) <= 1.0 else 1.0
            frame = np.clip(np.nan_to_num(frame) * scale, 0, 255).astype(np.uint8)
        else:
            return None
    channels = 1 if frame.ndim == 2 else frame.shape[2]
    if channels == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame if channels == 3 else None


def open_source(spec: str, req: CaptureRequest | None = None, realtime: bool = True) -> Source:
    """Build a source from ``demo``, ``demo:walk``, a camera index, ``/dev/videoN``, or an image/video path (not opened yet)."""
    req = req or CaptureRequest()
    s = str(spec).strip()
    if s == "demo":
        return DemoSource(req, realtime=realtime)
    if s == "demo:walk":
        from .walking_demo import WalkingDemoSource

        return WalkingDemoSource(req, realtime=realtime)
    if s.isdigit():
        return CameraSource(int(s), req)
    if s.startswith("/dev/video"):
        return CameraSource(s, req)
    path = Path(s).expanduser()
    if not path.exists():
        raise SourceError(f"source {spec!r} is not 'demo', 'demo:walk', a camera index, /dev/videoN, or an existing file")
    problem = file_problem(path, "source")           # stat only: opening a FIFO could wait for ever
    if problem:
        raise SourceError(problem)
    if media_kind(path) == "image":
        return StillSource(None, req, name=f"image {path.name}", path=path, realtime=realtime)
    if path.is_file():
        return VideoFileSource(path, req, realtime=realtime)
    raise SourceError(f"source {spec!r} is not a file")


def _v4l2_name(dev: str) -> str:
    try:
        return Path(f"/sys/class/video4linux/{Path(dev).name}/name").read_text().strip()
    except OSError:
        return ""


def _is_loopback(dev: str) -> bool:
    name = _v4l2_name(dev).lower()
    return "loopback" in name or "dummy" in name or "bgswap" in name


def _v4l2_devices() -> list[str]:
    return sorted(glob.glob("/dev/video*"), key=lambda p: int(p[10:]) if p[10:].isdigit() else 999)


def list_cameras() -> list[str]:
    """Real cameras: ``/dev/video*`` minus virtual (loopback) devices on Linux; indices 0..3 that open elsewhere."""
    if platform.system() == "Linux":
        return [d for d in _v4l2_devices() if not _is_loopback(d)]
    found = []
    with opencv_quiet():
        for i in range(4):
            cap = cv2.VideoCapture(i)
            if cap.isOpened():
                found.append(str(i))
            cap.release()
    return found


def list_virtual_cameras() -> list[str]:
    """v4l2loopback devices a virtual camera can publish to (Linux only; elsewhere the backend picks)."""
    return [d for d in _v4l2_devices() if _is_loopback(d)] if platform.system() == "Linux" else []


def default_source() -> str:
    """The first real camera, or the built-in demo when there is none."""
    cams = list_cameras()
    return cams[0] if cams else "demo"
