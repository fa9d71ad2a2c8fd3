"""When the model should run: at most ``max_rate`` times a second, and not at all while the picture
stands still (a still person does not need 30 masks a second; the last one is refined against each
new frame's edges in between). A change in the frame, or a mask older than ``max_still_age``,
brings the model back at once.

Times are the frames' capture times, so the cap falls on whole frames: at 30 fps a cap of 15 gives
every second frame rather than every second or third. A run may come ``RATE_SLACK`` of an interval
early (the camera's jitter), but the next one is due a whole interval after the previous due time,
so over any stretch of time the rate stays within the cap.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

THUMB = (32, 24)
RATE_SLACK = 0.1        # a run may come this share of 1 / max_rate early


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """A 32x24 grey picture of the frame: enough to see motion, ~0.1 ms to make."""
    small = cv2.resize(frame, THUMB, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.int16)


@dataclass
class MaskSchedule:
    max_rate: float                 # model runs per second at most; 0 = every frame, still or not
    still_level: float = 1.5        # mean grey change (0-255) under which the frame counts as still
    max_still_age: float = 1.0      # seconds: even a still picture gets a fresh mask this often

    def __post_init__(self) -> None:
        self._last_run = -1e9
        self._due = -1e9            # capture time from which the rate cap allows the next run
        self._last_thumb: np.ndarray | None = None
        self.still_skips = 0        # frames the rate cap allowed but that were still: no run needed

    def reset(self) -> None:
        self.__post_init__()

    def wait_before_next(self, now: float) -> float:
        """Seconds to wait before the rate cap allows another run (0 when it allows one now)."""
        if self.max_rate <= 0:
            return 0.0
        return max(0.0, self._due - now)

    def should_run(self, frame: np.ndarray, now: float) -> bool:
        """True when ``frame`` (captured at ``now``) needs a new mask; records it as the frame the
        mask is made from."""
        rate = self.max_rate           # read once: the window may change it meanwhile (0 = every frame)
        if rate <= 0:
            return True
        if self.wait_before_next(now) > 0:
            return False
        thumb = thumbnail(frame)
        if (self._last_thumb is not None and self._last_thumb.shape == thumb.shape
                and now - self._last_run < self.max_still_age
                and float(np.mean(np.abs(thumb - self._last_thumb))) < self.still_level):
            self.still_skips += 1
            return False
        interval = 1.0 / rate
        self._due = max(self._due + interval, now + interval * (1 - RATE_SLACK))
        self._last_run, self._last_thumb = now, thumb
        return True
