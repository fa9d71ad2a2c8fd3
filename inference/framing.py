"""Auto-framing: a digital pan and zoom that keeps the person centred and sized like a video call.

It follows the box of the person mask the model already makes, so it costs a crop and a resize. A
dead band keeps the crop still while the person sits (no jitter); beyond it the crop glides to
the new place with a time constant of about a third of a second, and while the person walks sideways
it aims where they will be by then (their speed from mask to mask, times the glide's lag); it never
zooms past ``max_zoom`` (the camera's own pixels stretched that far at most).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

HEIGHT_SHARE = 0.8        # the person (head to the crop's bottom) fills this much of the crop's height
HEADROOM = 0.12           # the space above the head, as a share of the crop's height
DEAD_BAND = 0.04          # the crop moves only when the target is this far away (share of the frame)
GLIDE = 0.1               # per frame, the share of the way to the target the crop moves (30 fps: ~0.3 s)
LEAD = 10.0               # a person moving sideways is framed where they will be this many frames on (the glide's lag)
WALKING = 0.002           # sideways speed (share of the width a frame) from which the lead applies


@dataclass
class Crop:
    """A crop of the frame: centre and zoom, as shares of the frame (zoom 1 = the whole frame)."""

    cx: float = 0.5
    cy: float = 0.5
    zoom: float = 1.0

    def rect(self, width: int, height: int) -> tuple[float, float, float, float]:
        """(x0, y0, w, h) in pixels, inside the frame."""
        w, h = width / self.zoom, height / self.zoom
        x0 = min(max(self.cx * width - w / 2, 0.0), width - w)
        y0 = min(max(self.cy * height - h / 2, 0.0), height - h)
        return x0, y0, w, h


class AutoFramer:
    """``update`` with each new person probability (any size), then ``apply`` to each output frame."""

    def __init__(self, max_zoom: float = 1.5):
        self.max_zoom = max(1.0, max_zoom)
        self.crop = Crop()
        self._target = Crop()
        self._last_cx: float | None = None     # the person's centre at the last mask
        self._frames = 0                       # output frames since the last mask
        self.speed = 0.0                       # sideways, share of the width a frame (smoothed)

    def reset(self) -> None:
        self.crop, self._target = Crop(), Crop()
        self._last_cx, self._frames, self.speed = None, 0, 0.0

    def target_for(self, prob: np.ndarray) -> Crop:
        """Where the crop should be for this mask: the person centred, head near the top, sized like a call."""
        mask = prob > 0.5
        if mask.mean() < 0.01:                      # nobody (or a speck): the whole frame
            return Crop()
        h, w = mask.shape
        ys, xs = np.nonzero(mask)
        top = float(np.percentile(ys, 1)) / h
        left, right = (float(np.percentile(xs, q)) / w for q in (2, 98))
        person_h = 1.0 - top                         # a webcam's person is cut by the bottom edge
        cx = (left + right) / 2
        sized = HEIGHT_SHARE / max(person_h, 1e-3)
        centred = 0.5 / max(min(cx, 1.0 - cx), 1e-3)  # the zoom that lets the crop centre them near an edge
        zoom = float(np.clip(max(sized, centred), 1.0, self.max_zoom))
        cy = top - HEADROOM / zoom + 0.5 / zoom     # the head HEADROOM below the crop's top
        return Crop(cx=cx, cy=cy, zoom=zoom)

    def update(self, prob: np.ndarray) -> None:
        """A new mask: move the target only when it left the dead band (a person sitting still moves
        their head a little all the time)."""
        t = self.target_for(prob)
        if self._last_cx is not None and t.zoom > 0 and self._frames > 0:
            v = (t.cx - self._last_cx) / self._frames
            self.speed += 0.5 * (v - self.speed)
        self._last_cx, self._frames = t.cx, 0
        if abs(self.speed) > WALKING:          # walking: frame where they are going (the glide lags ~LEAD frames)
            lead = self.speed * LEAD
            t = Crop(cx=t.cx + lead, cy=t.cy, zoom=t.zoom)
        if (abs(t.cx - self._target.cx) > DEAD_BAND or abs(t.cy - self._target.cy) > DEAD_BAND
                or abs(t.zoom - self._target.zoom) > DEAD_BAND * self._target.zoom):
            self._target = t

    def step(self) -> Crop:
        """One output frame: glide the crop towards the target; it rests exactly once there."""
        self._frames += 1
        c, t = self.crop, self._target
        moved = Crop(c.cx + (t.cx - c.cx) * GLIDE, c.cy + (t.cy - c.cy) * GLIDE, c.zoom + (t.zoom - c.zoom) * GLIDE)
        if abs(moved.cx - t.cx) < 1e-3 and abs(moved.cy - t.cy) < 1e-3 and abs(moved.zoom - t.zoom) < 1e-3:
            moved = Crop(t.cx, t.cy, t.zoom)
        self.crop = moved
        return moved

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """The frame cropped to the current crop and scaled back to its size (sub-pixel, so a glide is smooth)."""
        crop = self.step()
        h, w = frame.shape[:2]
        x0, y0, cw, ch = crop.rect(w, h)
        if cw >= w - 0.5 and ch >= h - 0.5:          # the whole frame: nothing to do
            return frame
        s = w / cw
        m = np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]], np.float32)
        return cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
