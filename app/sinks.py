"""Where composited frames go: a callback (the GUI), a virtual camera, a video file.

Every sink has the same small interface. ``send`` never blocks the pipeline:
the virtual camera and the file writer run their own threads.
"""
from __future__ import annotations

import errno
import logging
import platform
import queue
import re
import threading
from pathlib import Path
from typing import Callable, Protocol

import cv2
import numpy as np

from .device_readers import ReaderWatch
from .output_file import OutputFile, OutputUnavailable
from .slots import LatestSlot
from .sources import fit_frame
from .video_writer import VideoWriter, open_video_writer, video_path_problem

log = logging.getLogger(__name__)


class Sink(Protocol):
    name: str
    watched: bool          # someone sees this output now; when no sink is watched the engine idles

    def start(self, width: int, height: int, fps: float) -> None: ...
    def send(self, frame: np.ndarray) -> None: ...
    def close(self) -> None: ...


class SinkUnavailable(RuntimeError):
    """A sink cannot start; the message says why and how to fix it."""


class CallbackSink:
    """Hands every frame to a function, in the pipeline thread (keep it short: emit a signal)."""

    def __init__(self, fn: Callable[[np.ndarray], None], name: str = "callback"):
        self.fn = fn
        self.name = name
        self.watched = True          # the window sets this False while the preview is hidden

    def start(self, width, height, fps):
        pass

    def send(self, frame):
        self.fn(frame)

    def close(self):
        pass


LINUX_VCAM_FIX = "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=\"BgSwap Camera\""
NO_VCAM_LINUX = f"No virtual camera device: run `{LINUX_VCAM_FIX}` (package v4l2loopback-dkms)"


def virtual_camera_fix() -> str:
    """What the user has to do to get a virtual camera device on this OS (one short sentence)."""
    system = platform.system()
    if system == "Linux":
        return f"run `{LINUX_VCAM_FIX}` (package v4l2loopback-dkms)"
    if system in ("Windows", "Darwin"):
        return "install OBS Studio (27+) and start its virtual camera once, so the device exists"
    return "no virtual camera backend is known for this system"


def virtual_camera_message(raw: str, device: str | None = None) -> str:
    """pyvirtualcam's error text (every backend's failure, with its own advice) as one short sentence a
    person can act on, giving the fix once. The raw text goes to the log (-v)."""
    low = raw.lower()
    where = f" {device}" if device else ""
    if platform.system() == "Linux":
        if "no v4l2 loopback device found" in low or (device and not Path(device).exists()):
            return f"No virtual camera device{where}: run `{LINUX_VCAM_FIX}` (package v4l2loopback-dkms)"
        if "not a v4l2 loopback" in low or "not a loopback" in low:
            return f"{device or 'The device'} is a real camera, not a virtual one: choose a v4l2loopback device or Auto"
        if "busy" in low or "in use" in low:
            return f"The virtual camera{where} is in use by another program: close it, or choose another device"
    elif platform.system() in ("Windows", "Darwin"):
        return f"No virtual camera{where}: {virtual_camera_fix()}"
    reason = re.sub(r"^\W*'[^']*' backend:\s*", "", raw.strip()).split(". ")[0].strip(" .()")
    return f"Virtual camera{where} cannot be opened ({reason}): {virtual_camera_fix()}"


def virtual_camera_problem(backend: str | None = None) -> str | None:
    """Why no virtual camera can be opened now, with the fix, found cheaply (no device is opened);
    None when one may be. On Linux: the v4l2loopback module or a loopback device; elsewhere only
    opening the camera tells, so None."""
    if platform.system() != "Linux" or backend not in (None, "v4l2loopback"):
        return None
    from .sources import list_virtual_cameras

    if Path("/sys/module/v4l2loopback").exists() or list_virtual_cameras():
        return None
    return NO_VCAM_LINUX


class VirtualCameraSink:
    """Publishes frames to a virtual camera at a steady rate from its own sender thread.

    The newest frame wins; when the pipeline is slower than ``fps`` the last
    frame is repeated, so video-call apps see a constant-rate camera. ``watched`` says whether a
    program has the device open (``ReaderWatch`` on ``reader_node``: the device itself by default,
    on Linux); with no reader the last frame is repeated once a second only.
    """

    def __init__(self, device: str | None = None, backend: str | None = None,
                 reader_node: str | Path | None = None):
        self.device = device
        self.backend = backend
        self.reader_node = reader_node
        self._readers: ReaderWatch | None = None
        self.name = "virtual camera"
        self._slot: LatestSlot[np.ndarray] = LatestSlot()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._cam = None
        self.device_name: str | None = None

    def start(self, width: int, height: int, fps: float) -> None:
        import pyvirtualcam

        try:
            self._cam = pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.BGR,
                                            device=self.device, backend=self.backend)
        except Exception as exc:  # pyvirtualcam raises RuntimeError listing each backend's failure
            log.debug("pyvirtualcam: %s", exc)
            raise SinkUnavailable(virtual_camera_message(str(exc), self.device)) from exc
        self.device_name = self._cam.device
        node = self.reader_node or (self._cam.device if platform.system() == "Linux" else None)
        if node and Path(node).exists():
            self._readers = ReaderWatch(node)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="virtual-camera", daemon=True)
        self._thread.start()
        log.info("virtual camera on %s (%s), %dx%d @ %g fps", self._cam.device, self._cam.backend, width, height, fps)

    @property
    def watched(self) -> bool:
        return self._readers is None or self._readers.readers > 0

    def send(self, frame: np.ndarray) -> None:
        self._slot.put(frame)

    def _run(self) -> None:
        last = None
        while not self._stop.is_set():
            watched = self.watched
            # Watched: take a new frame if there is one, else repeat the last at the camera's rate.
            # Unwatched: wait up to a second for a new frame (the engine is idle and sends none).
            wait = (0 if watched else 1.0) if last is not None else 0.1
            frame = self._slot.get(timeout=wait)
            if frame is not None:
                last = frame
            if last is None:
                continue
            try:
                if last.shape[:2] != (self._cam.height, self._cam.width):
                    last = fit_frame(last, self._cam.width, self._cam.height)      # never stretched
                self._cam.send(last)
                if watched:
                    self._cam.sleep_until_next_frame()
            except Exception:
                log.exception("virtual camera send failed; stopping the virtual camera")
                break

    def close(self) -> None:
        self._stop.set()
        self._slot.close()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._cam is not None:
            self._cam.close()
            self._cam = None
        if self._readers is not None:
            self._readers.close()
            self._readers = None


class FileSink:
    """Writes frames to a video file from its own thread.

    Frames go to a hidden partial file beside ``path``, made new with a random name (never a name that
    may already exist, such as a planted link); ``close`` finalises it, checks that it holds every
    frame written, and only then moves it to ``path``: replacing what is there only with
    ``overwrite``, else under the next free name. A write error, a file that stops growing (a full
    disk that the writer does not report), a short file or a failed move ends with ``error`` set, the
    partial file removed and ``path`` untouched. A lock file (``.NAME.lock``, opened without
    following links) keeps a second process from writing the same output.
    """

    GROWTH_CHECK_FRAMES = 30        # the partial file's size is checked this often
    STALLED_CHECKS = 3              # ... and a file that has not grown over this many checks failed

    def __init__(self, path: str | Path, max_queue: int = 64, max_frames: int | None = None,
                 overwrite: bool = False):
        self.path = Path(path)
        self.overwrite = overwrite
        self.max_frames = max_frames          # frames after this many are not written
        self._accepted = 0
        self.name = f"file {self.path.name}"
        self.watched = True          # a recording wants every frame
        self._q: queue.Queue = queue.Queue(maxsize=max_queue)
        self._writer: VideoWriter | None = None
        self._thread: threading.Thread | None = None
        self.output: OutputFile | None = None
        self.frames_written = 0
        self.dropped = 0
        self.error: str | None = None          # set when the recording failed; the file is not kept
        self._size: tuple[int, int] | None = None
        self.partial_path: Path | None = None
        self.saved_path: Path | None = None     # where the recording is (``path``, or the next free name)

    def start(self, width: int, height: int, fps: float) -> None:
        if self.path.parent and not self.path.parent.exists():
            raise SinkUnavailable(f"output folder {self.path.parent} does not exist")
        problem = video_path_problem(self.path)      # before recording, not after (then all would be lost)
        if problem:
            raise SinkUnavailable(problem)
        self.output = OutputFile(self.path, self.overwrite)
        try:
            self.output.lock()
        except OutputUnavailable as exc:
            raise SinkUnavailable(str(exc)) from exc
        try:
            self.partial_path = self.output.new_partial()
            self._writer = open_video_writer(self.partial_path, width, height, fps)
        except (OSError, ValueError) as exc:
            self.output.discard_partial()
            self.output.release()
            raise SinkUnavailable(f"cannot write video file {self.path}: {exc} "
                                  "(use a .mp4 or .avi name in a writable folder)") from exc
        self._size = (width, height)
        self._thread = threading.Thread(target=self._run, name="file-writer", daemon=True)
        self._thread.start()

    @property
    def failed(self) -> bool:
        return self.error is not None

    def send(self, frame: np.ndarray) -> None:
        if self.error is not None or (self.max_frames is not None and self._accepted >= self.max_frames):
            return
        try:
            self._q.put_nowait(frame)
            self._accepted += 1
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        last_size, stalled = -1, 0
        while True:
            frame = self._q.get()
            if frame is None:
                break
            if self.error is not None:
                continue
            if (frame.shape[1], frame.shape[0]) != self._size:
                frame = fit_frame(frame, *self._size)          # never stretched
            try:
                self._writer.write(frame)
            except Exception as exc:          # disk full, file system gone
                hint = (": free some space or choose another --output folder"
                        if getattr(exc, "errno", None) == errno.ENOSPC else "")
                self._fail(f"writing {self.path} failed after {self.frames_written} frames: {exc}{hint}")
                continue
            self.frames_written += 1
            if self._writer.silent_failures and self.frames_written % self.GROWTH_CHECK_FRAMES == 0:
                size = self._partial_size()
                stalled = stalled + 1 if size <= last_size else 0
                last_size = max(last_size, size)
                if stalled >= self.STALLED_CHECKS:
                    self._fail(f"writing {self.path} failed after {self.frames_written} frames: the file stopped "
                               "growing (is the disk full?)")

    def _partial_size(self) -> int:
        try:
            return self.partial_path.stat().st_size
        except OSError:
            return -1

    def _fail(self, message: str) -> None:
        self.error = message
        log.error("%s", message)

    def close(self) -> None:
        """Finalise: the file is at ``path`` holding every written frame, or not there at all."""
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        try:
            writer.close()
        except Exception as exc:
            self.error = self.error or f"finishing {self.path} failed: {exc}"
        if self.error is None and self.frames_written:
            found = count_video_frames(self.partial_path)
            if found != self.frames_written:
                self.error = (f"{self.path} is incomplete: {found} of {self.frames_written} frames could be "
                              "read back (is the disk full?)")
        try:
            if self.error is None and self.frames_written:
                try:
                    self.saved_path = self.output.move_into_place()
                except OSError as exc:
                    self.error = f"saving {self.path} failed: {exc.strerror or exc}"
            if self.error is None and self.frames_written:
                log.info("wrote %d frames (%s) to %s", self.frames_written, writer.codec, self.saved_path)
            else:
                if self.partial_path is not None:
                    self.partial_path.unlink(missing_ok=True)
                if self.error:
                    log.error("%s; nothing was kept", self.error)
                else:                   # a run that made no frame leaves no empty file behind
                    log.info("no frames were made: %s not written", self.path)
        finally:
            self.output.release()


def count_video_frames(path: Path) -> int:
    """Frames the file's index lists (0 when it cannot be opened): instant, even for an hour of video."""
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()
