"""Turn the network's low-resolution probability into a clean, stable, full-size alpha matte.

Steps: motion-aware temporal smoothing (steady where nothing moves, instant
where something does) and optionally only the largest person, on the
low-resolution mask; then edge-aware upsampling with a fast guided filter that
uses the camera frame's colours as the guide (He et al.'s colour guided filter;
grey is the cheaper option), so the matte snaps to real edges (what Google Meet
does); then a soft threshold (``threshold`` +- ``feather``), which turns the
filter's gentle steps into crisp edges. The filter and threshold run on the frame
reduced by a whole factor to at most ``WORK_PIXELS`` (640x360: 1280x720 halved),
and only the finished matte is scaled to the frame: their cost follows the edge's
detail, not the camera's pixel count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import cv2
import numpy as np

WORK_PIXELS = 640 * 360        # the guided filter works on the frame reduced to at most this many pixels
                               # (1280x720 and 640x480 halved: measured no worse in boundary F, steadier)
REFERENCE_LINES = 480          # the guided filter's coefficients are computed on ~1/4 of a frame this tall


def _ranged(default: float, lo: float, hi: float) -> Any:
    """A field with its valid range: the one home of each edge setting's range (``validate``, the app's
    settings check and the Quality tab's sliders read it: ``setting_range``)."""
    return field(default=default, metadata={"range": (lo, hi)})


@dataclass
class RefineSettings:
    threshold: float = _ranged(0.5, 0.1, 0.9)     # probability that counts as half-person
    feather: float = _ranged(0.15, 0.0, 0.5)      # half-width of the soft ramp around the threshold (0 = hard edge)
    temporal: float = _ranged(0.6, 0.0, 0.95)     # 0 = no smoothing, towards 1 = steadier (motion always passes)
    edge_radius: int = _ranged(12, 0, 16)         # guided-filter radius at frame resolution (0 = plain bilinear)
    edge_eps: float = _ranged(1e-3, 1e-6, 1.0)    # guided-filter regularisation: smaller follows edges more tightly
    colour_edges: bool = True      # guide by colour (edges between same-brightness colours); False = grey
    largest_person_only: bool = False
    decontaminate: bool = False    # edge pixels take the person's own colour, not the old room's (compositing)
    light_wrap: float = _ranged(0.0, 0.0, 1.0)    # 0 = off .. 1: the new background's light spills onto the edge

    def validate(self) -> "RefineSettings":
        for f in fields(self):
            if "range" in f.metadata:
                lo, hi = f.metadata["range"]
                if not lo <= getattr(self, f.name) <= hi:
                    raise ValueError(f"{f.name.replace('_', ' ')} must be between {lo:g} and {hi:g}")
        return self


def setting_range(name: str) -> tuple[float, float]:
    """The valid range of the RefineSettings field ``name``."""
    return next(f.metadata["range"] for f in fields(RefineSettings) if f.name == name)


def soft_threshold(prob: np.ndarray, threshold: float, feather: float) -> np.ndarray:
    """Map probability to alpha with a linear ramp of half-width ``feather`` around ``threshold``."""
    if feather <= 1e-6:
        return (prob >= threshold).astype(np.float32)
    # numpy, not cv2.subtract/multiply with a number: OpenCV takes a 4x1 array for a scalar (cv2.error)
    out = np.subtract(prob, np.float32(threshold - feather), dtype=np.float32)
    out *= np.float32(1.0 / (2 * feather))
    return np.clip(out, 0.0, 1.0, out=out)


def mask_of(condition: np.ndarray) -> np.ndarray:
    """A boolean array as a uint8 0/255 mask. Used instead of cv2.compare with a number, which fails
    on a 1x1 array (OpenCV cannot tell the number from an array of that size)."""
    return np.multiply(condition.view(np.uint8), np.uint8(255), dtype=np.uint8)


def at_least(values: np.ndarray, level: float) -> np.ndarray:
    """uint8 0/255: where ``values`` >= ``level``."""
    return mask_of(np.greater_equal(values, np.float32(level)))


def keep_largest_region(alpha: np.ndarray, level: float = 0.5) -> np.ndarray:
    """Zero every connected person region but the largest (soft edges of the kept one stay)."""
    binary = (alpha >= level).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 2:
        return alpha
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    keep = cv2.dilate((labels == biggest).astype(np.uint8), np.ones((3, 3), np.uint8))
    return alpha * keep


class TemporalFilter:
    """Exponential smoothing whose weight drops to zero where the mask changes a lot (motion)."""

    def __init__(self) -> None:
        self.state: np.ndarray | None = None

    def reset(self) -> None:
        self.state = None

    def __call__(self, prob: np.ndarray, strength: float) -> np.ndarray:
        if strength <= 0 or self.state is None or self.state.shape != prob.shape:
            self.state = prob.copy()
            return self.state
        diff = np.abs(prob - self.state)
        # keep = strength for small changes (flicker, < 0.15), falling to 0 at 0.5 (real motion).
        keep = strength * np.clip((0.5 - diff) * (1 / 0.35), 0.0, 1.0)
        self.state = prob + keep * (self.state - prob)
        return self.state


def block_mean(img: np.ndarray, factor: int, by_halves: bool = False) -> np.ndarray:
    """``img`` reduced by the whole ``factor``: the mean of each ``factor`` x ``factor`` block from the top
    left (rows and columns past the last whole block are left out; factor 1 gives ``img`` itself, not a
    copy). Float images, and with ``by_halves`` integer ones, go by halvings for the factor's even part:
    OpenCV's vectorised path is the 2x2 one (640x360 uint8 by 4: 0.07 ms as two halvings, 0.24 in one
    step); integer means then round at each step (up to half a grey level each)."""
    h, w = img.shape[:2]
    out = img[:h - h % factor, :w - w % factor]
    halves = by_halves or np.issubdtype(img.dtype, np.floating)
    while factor > 1:
        step = 2 if halves and factor % 2 == 0 else factor
        out = cv2.resize(out, (out.shape[1] // step, out.shape[0] // step), interpolation=cv2.INTER_AREA)
        factor //= step
    return out


def _area_resize(img: np.ndarray, width: int, height: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(pixel averages at ``width`` x ``height``, the (width, height) of ``img`` they cover). When the
    size is nearly a whole factor smaller, the few rows and columns past it are left out: OpenCV's
    fast path for whole factors (3x faster); ``_grid_to`` puts the grid back over the whole image."""
    h, w = img.shape[:2]
    fx, fy = w // width, h // height
    if fx == fy and fx >= 2 and (w - fx * width) < fx and (h - fy * height) < fy:
        return block_mean(img, fx), (fx * width, fy * height)
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA), (w, h)


def _onto_grid(prob: np.ndarray, covered: tuple[int, int], size: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """``prob`` (over a whole image of ``size``, width x height) resampled bilinearly onto a grid of
    ``grid`` cells that covers the image's top-left ``covered`` part."""
    if covered == size:
        return cv2.resize(prob, grid, interpolation=cv2.INTER_LINEAR)
    sx = covered[0] / grid[0] * prob.shape[1] / size[0]      # probability pixels per grid cell
    sy = covered[1] / grid[1] * prob.shape[0] / size[1]
    m = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]], np.float32)
    return cv2.warpAffine(prob, m, grid, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def _grid_to(grid: np.ndarray, covered: tuple[int, int], width: int, height: int) -> np.ndarray:
    """A coefficient grid that covers ``covered`` (width, height) scaled to it bilinearly, and the rows
    and columns past it (fewer than a grid cell) continued from its edge, to ``width`` x ``height``."""
    up = cv2.resize(grid, covered, interpolation=cv2.INTER_LINEAR)
    if covered == (width, height):
        return up
    return cv2.copyMakeBorder(up, 0, height - covered[1], 0, width - covered[0], cv2.BORDER_REPLICATE)


def guided_upsample(alpha_small: np.ndarray, frame_bgr: np.ndarray, radius: int, eps: float,
                    colour: bool = False, coarse: int = 4) -> np.ndarray:
    """Fast guided filter (He & Sun 2015): coefficients on a grid ``coarse`` times smaller than the
    frame, applied at the frame's size.

    ``colour`` guides by the frame's three colour channels (a 3x3 solve per pixel), which also
    finds edges between colours of equal brightness; otherwise by its grey levels.
    """
    h, w = frame_bgr.shape[:2]
    if radius <= 0:
        return cv2.resize(alpha_small, (w, h), interpolation=cv2.INTER_LINEAR)
    if colour:
        return _colour_guided_upsample(alpha_small, frame_bgr, radius, eps, coarse)
    sh, sw = alpha_small.shape
    # Work at ~1/coarse of the frame (at least the mask size) for speed. Grey first, then shrink:
    # the same guide up to rounding (both steps are linear), a third of the resizing work.
    gh, gw = max(sh, h // coarse), max(sw, w // coarse)
    gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
    guide, covered = _area_resize(gray, gw, gh)
    guide = guide.astype(np.float32) * (1 / 255.0)
    p = _onto_grid(alpha_small, covered, (w, h), (gw, gh))
    r = max(1, round(radius * gw / w))
    k = (2 * r + 1, 2 * r + 1)
    mean_i = cv2.boxFilter(guide, -1, k)
    mean_p = cv2.boxFilter(p, -1, k)
    corr_ip = cv2.boxFilter(guide * p, -1, k)
    var_i = cv2.boxFilter(guide * guide, -1, k) - mean_i * mean_i
    a = (corr_ip - mean_i * mean_p) / (var_i + eps)
    b = mean_p - a * mean_i
    mean_a = _grid_to(cv2.boxFilter(a, -1, k), covered, w, h)
    mean_b = _grid_to(cv2.boxFilter(b, -1, k), covered, w, h)
    out = cv2.multiply(mean_a, gray, scale=1 / 255.0, dtype=cv2.CV_32F)
    cv2.add(out, mean_b, dst=out)
    return np.clip(out, 0.0, 1.0, out=out)


def _colour_guided_upsample(alpha_small: np.ndarray, frame_bgr: np.ndarray, radius: int, eps: float,
                            coarse: int) -> np.ndarray:
    """The colour guided filter: per window, alpha ~ a . colour + b, with a 3x3 covariance solve.

    The covariance inverse is written out (cofactors of the symmetric matrix) so every step is a
    whole-image OpenCV/numpy operation at 1/``coarse`` of the frame size.
    """
    h, w = frame_bgr.shape[:2]
    gh, gw = max(8, h // coarse), max(8, w // coarse)   # not the mask size: the solve is costly
    guide, covered = _area_resize(frame_bgr, gw, gh)
    guide = guide.astype(np.float32) * (1 / 255.0)
    p = _onto_grid(alpha_small, covered, (w, h), (gw, gh))
    r = max(1, round(radius * gw / w))
    k = (2 * r + 1, 2 * r + 1)
    chans = cv2.split(guide)
    mean_p = cv2.boxFilter(p, -1, k)
    means = [cv2.boxFilter(c, -1, k) for c in chans]
    cov_p = [cv2.boxFilter(c * p, -1, k) - m * mean_p for c, m in zip(chans, means)]

    def var(i: int, j: int) -> np.ndarray:
        v = cv2.boxFilter(chans[i] * chans[j], -1, k) - means[i] * means[j]
        return v + eps if i == j else v

    s00, s01, s02, s11, s12, s22 = var(0, 0), var(0, 1), var(0, 2), var(1, 1), var(1, 2), var(2, 2)
    c00 = s11 * s22 - s12 * s12
    c01 = s02 * s12 - s01 * s22
    c02 = s01 * s12 - s02 * s11
    c11 = s00 * s22 - s02 * s02
    c12 = s01 * s02 - s00 * s12
    c22 = s00 * s11 - s01 * s01
    inv_det = 1.0 / (s00 * c00 + s01 * c01 + s02 * c02)
    a0 = (c00 * cov_p[0] + c01 * cov_p[1] + c02 * cov_p[2]) * inv_det
    a1 = (c01 * cov_p[0] + c11 * cov_p[1] + c12 * cov_p[2]) * inv_det
    a2 = (c02 * cov_p[0] + c12 * cov_p[1] + c22 * cov_p[2]) * inv_det
    b = mean_p - a0 * means[0] - a1 * means[1] - a2 * means[2]
    mean_a = _grid_to(cv2.boxFilter(cv2.merge([a0, a1, a2]), -1, k), covered, w, h)
    mean_b = _grid_to(cv2.boxFilter(b, -1, k), covered, w, h)
    cv2.multiply(mean_a, frame_bgr, dst=mean_a, scale=1 / 255.0, dtype=cv2.CV_32F)
    out = cv2.transform(mean_a, np.ones((1, 3), np.float32))      # sum over the colour channels
    cv2.add(out, mean_b, dst=out)
    return np.clip(out, 0.0, 1.0, out=out)


def to_uint8(prob: np.ndarray) -> np.ndarray:
    """A probability or alpha in [0, 1] as uint8 0-255, rounded."""
    return np.clip(prob * 255.0 + 0.5, 0, 255).astype(np.uint8)


def work_factor(height: int, width: int, max_pixels: int = WORK_PIXELS) -> int:
    """The least whole factor that brings a ``width`` x ``height`` frame to at most ``max_pixels``."""
    return max(1, math.ceil(math.sqrt(height * width / max_pixels)))


def reduce_frame(frame_bgr: np.ndarray, factor: int) -> np.ndarray:
    """``frame_bgr`` shrunk by a whole ``factor`` (pixel averages; OpenCV's fast path for whole factors)."""
    if factor == 1:
        return frame_bgr
    h, w = frame_bgr.shape[:2]
    return cv2.resize(frame_bgr, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


@dataclass
class Matte:
    """A refined matte, kept at the working size: ``level`` is the guided filter's output before the
    soft threshold (``threshold`` +- ``feather``), ``work_frame`` the frame reduced to that size (what
    guided it), ``size`` the frame's (height, width). The threshold is applied after scaling up, so
    the edge stays as crisp as when the filter runs at the frame's size."""

    level: np.ndarray
    work_frame: np.ndarray
    size: tuple[int, int]
    threshold: float = 0.5
    feather: float = 0.5
    _work: np.ndarray | None = None
    _level_full: np.ndarray | None = None
    _full: np.ndarray | None = None

    @classmethod
    def of(cls, alpha: np.ndarray, frame_bgr: np.ndarray) -> "Matte":
        """A full-size alpha as a matte (working size = the frame's; the ramp 0.5 +- 0.5 keeps it as is)."""
        return cls(alpha, frame_bgr, frame_bgr.shape[:2], 0.5, 0.5, alpha, alpha, alpha)

    @property
    def work(self) -> np.ndarray:
        """The alpha (float32, 0-1) at the working size."""
        if self._work is None:
            self._work = soft_threshold(self.level, self.threshold, self.feather)
        return self._work

    def level_full(self) -> np.ndarray:
        """``level`` scaled to the frame's size (bilinear; made once)."""
        if self._level_full is None:
            h, w = self.size
            self._level_full = (self.level if self.level.shape == (h, w)
                                else cv2.resize(self.level, (w, h), interpolation=cv2.INTER_LINEAR))
        return self._level_full

    def full_in(self, ys: slice, xs: slice) -> np.ndarray:
        """The alpha at the frame's size within rows ``ys`` and columns ``xs``."""
        if self._full is not None:
            return self._full[ys, xs]
        return soft_threshold(self.level_full()[ys, xs], self.threshold, self.feather)

    def person_mask(self) -> np.ndarray:
        """uint8 0/255 at the frame's size: where the alpha is at least 0.5."""
        if self._full is not None:
            return at_least(self._full, 0.5)
        return at_least(self.level_full(), self.threshold)

    def full(self) -> np.ndarray:
        """The alpha (float32, 0-1) at the frame's size (made once)."""
        if self._full is None:
            self._full = soft_threshold(self.level_full(), self.threshold, self.feather)
        return self._full


class MaskRefiner:
    """Stateful refiner: low-res probability + frame -> full-size alpha in [0, 1] (``matte`` keeps it at
    the working size for a compositor that touches only the edges at full size)."""

    def __init__(self, settings: RefineSettings | None = None, max_work_pixels: int = WORK_PIXELS):
        self.settings = (settings or RefineSettings()).validate()
        self.max_work_pixels = max_work_pixels
        self.temporal = TemporalFilter()

    def reset(self) -> None:
        self.temporal.reset()

    def matte(self, prob_small: np.ndarray, frame_bgr: np.ndarray) -> Matte:
        """The matte at the working size (the frame reduced by ``work_factor``)."""
        s = self.settings
        prob = self.temporal(prob_small.astype(np.float32, copy=False), s.temporal)
        if s.largest_person_only:
            prob = keep_largest_region(prob, s.threshold)
        h = frame_bgr.shape[0]
        k = work_factor(*frame_bgr.shape[:2], self.max_work_pixels)
        work = reduce_frame(frame_bgr, k)
        # The filter's coefficients live on a grid of ~120 lines whatever the camera (they vary
        # slowly; a bigger frame only shows the same edge with more pixels); it is applied at the
        # working size.
        scale = max(1.0, h / REFERENCE_LINES)
        r = max(1, round(s.edge_radius / k)) if s.edge_radius > 0 else 0
        level = guided_upsample(prob, work, r, s.edge_eps, s.colour_edges, coarse=max(1, round(4 * scale / k)))
        return Matte(level, work, frame_bgr.shape[:2], s.threshold, s.feather)

    def __call__(self, prob_small: np.ndarray, frame_bgr: np.ndarray) -> np.ndarray:
        return self.matte(prob_small, frame_bgr).full()
