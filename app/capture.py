"""The capture thread's work: owning the source, reading frames, reconnecting a camera, noticing a dead file.

Frames go into a newest-frame slot; the engine reads them from there. A camera that stops is
reopened with a backoff (0.5 s doubling to 5 s, cut short by ``stopping``); a file or demo source
that gives no frame for ``FILE_STALL_S`` ends the run with ``failure`` set.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from .slots import LatestSlot
from .sources import Source, SourceError, to_bgr_frame
from .stats import PipelineStats

log = logging.getLogger(__name__)

FILE_STALL_S = 3.0           # a file or demo source giving no frame this long has failed
BACKOFF_S = (0.5, 5.0)       # a lost camera (or Redis broker) is retried after 0.5 s, doubling to 5 s

StatusCallback = Callable[[str, str], None]   # (level: "info"|"warning"|"error", message)


@dataclass
class Frame:
    seq: int
    captured_at: float
    image: np.ndarray


class Capture:
    """Owns the current source and feeds ``frames``; ``run`` is the capture thread's body."""

    def __init__(self, frames: LatestSlot[Frame], stats: PipelineStats, status: StatusCallback,
                 mirror: Callable[[], bool], idle: Callable[[], bool]):
        self.frames = frames
        self.stats = stats
        self.status = status
        self.mirror = mirror                  # flip each frame (read every frame: a live setting)
        self.idle = idle                      # nobody watches: take frames from the driver undecoded
        self.source: Source | None = None
        self.failure: str | None = None       # why the run cannot go on (a file source died)
        self._lock = threading.Lock()
        self._gen = 0
        self._not_found_reported = False

    def open_first(self, source: Source) -> None:
        """Take ``source`` and open it: SourceError for a file that fails, a camera is reported and retried."""
        self.source = source
        self.failure = None
        self._not_found_reported = not self._open_or_report(source, first=True)

    def swap(self, new: Source) -> Source | None:
        """Make the already opened ``new`` the source; returns the old one for the caller to close."""
        with self._lock:
            old, self.source = self.source, new
            self._gen += 1
        return old

    def close(self) -> None:
        if self.source is not None:
            self.source.close()

    def _open_or_report(self, source: Source, first: bool = False) -> bool:
        """Open ``source``. A file that fails raises SourceError; a camera that fails is reported
        (on the first try) and False returned, to be retried."""
        try:
            source.open()
            return True
        except Exception as exc:
            err = exc if isinstance(exc, SourceError) else SourceError(f"{source.name} cannot be opened: {exc}")
            if not source.live:
                raise err from None
            if first:
                self.status("error", f"{err}; retrying every few seconds")
            return False

    def run(self, running: threading.Event, stopping: threading.Event) -> None:
        """Read frames into the slot while ``running``; ``stopping`` cuts waits short."""
        seq = 0
        backoff = BACKOFF_S[0]
        gen = -1
        lost = delivered = False
        stalled_since: float | None = None
        while running.is_set():
            with self._lock:
                src, cur_gen = self.source, self._gen
            if cur_gen != gen:       # a new source; the first one may already be reported as not found
                lost = gen == -1 and self._not_found_reported
                gen, delivered, backoff, stalled_since = cur_gen, False, BACKOFF_S[0], None
            if self.idle():
                self._idle_wait(src, stopping)
                continue
            t0 = time.perf_counter()
            frame = self._read(src)
            if frame is None:
                if not running.is_set() or cur_gen != self._gen:
                    continue
                if src.live:
                    if not lost:
                        self.status("warning", f"{src.name} lost: reconnecting..." if delivered else
                                    f"{src.name} gives no picture: retrying every few seconds")
                        lost = True
                    _safely(src.close)
                    if stopping.wait(backoff):
                        break
                    backoff = min(backoff * 2, BACKOFF_S[1])
                    if self._open_or_report(src) and cur_gen == self._gen:
                        frame = self._read(src)
                        if frame is not None:
                            self.status("info", f"{src.name} reconnected" if delivered else f"{src.name} found")
                    if frame is None:
                        continue
                    lost, backoff = False, BACKOFF_S[0]
                else:
                    now = time.monotonic()
                    stalled_since = stalled_since or now
                    if now - stalled_since >= FILE_STALL_S:
                        self.failure = f"{src.name} stopped giving frames (damaged or truncated file?)"
                        self.status("error", self.failure)
                        return
                    stopping.wait(0.05)
                    continue
            delivered, stalled_since = True, None
            self.stats.stage("capture", (time.perf_counter() - t0 - src.last_wait) * 1000)
            if self.mirror():
                frame = cv2.flip(frame, 1)
            seq += 1
            self.stats.frame_in()
            self.frames.put(Frame(seq, time.monotonic(), frame))

    @staticmethod
    def _idle_wait(src: Source, stopping: threading.Event) -> None:
        """While idle: a camera's frames are taken from the driver undecoded (so none is stale on
        resuming); files and the demo just wait."""
        skip = getattr(src, "skip", None)
        if src.live and skip is not None:
            try:
                if skip():
                    return
            except Exception as exc:
                log.debug("skip failed: %s", exc)
        stopping.wait(0.03)

    @staticmethod
    def _read(src: Source) -> np.ndarray | None:
        """One frame as 3-channel uint8 BGR, or None (read failed, or a frame no conversion fits)."""
        try:
            return to_bgr_frame(src.read())
        except Exception as exc:      # a driver or decoder error must not kill the thread
            log.debug("read from %s failed: %s", src.name, exc)
            return None


def _safely(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception as exc:
        log.debug("ignored: %s", exc)
