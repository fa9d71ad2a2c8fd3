"""Mask refinement: soft threshold, largest person, temporal smoothing, edge-aware upsampling."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from bgswap.inference.refine import (MaskRefiner, RefineSettings, TemporalFilter, guided_upsample, keep_largest_region,
                              soft_threshold)


def test_soft_threshold_ramp():
    p = np.array([0.0, 0.25, 0.5, 0.75, 1.0], np.float32)
    np.testing.assert_allclose(soft_threshold(p, 0.5, 0.25), [0, 0, 0.5, 1, 1])
    np.testing.assert_array_equal(soft_threshold(p, 0.6, 0.0), [0, 0, 0, 1, 1])


def test_keep_largest_region_removes_small_blobs():
    a = np.zeros((100, 100), np.float32)
    a[10:60, 10:60] = 1
    a[80:90, 80:90] = 1
    out = keep_largest_region(a)
    assert out[30, 30] == 1 and out[85, 85] == 0


def test_temporal_filter_smooths_noise_but_follows_motion():
    f = TemporalFilter()
    base = np.zeros((32, 32), np.float32)
    base[:, :16] = 1
    f(base, 0.8)
    noisy = base.copy()
    noisy[0, 20] = 0.2                      # small flicker in the background
    out = f(noisy, 0.8)
    assert out[0, 20] < 0.1                 # damped
    moved = np.zeros_like(base)
    moved[:, 8:24] = 1                      # the person moved: big change
    out = f(moved, 0.8)
    np.testing.assert_allclose(out[:, 16:24], 1.0)   # followed at once, no ghosting lag
    np.testing.assert_allclose(out[:, :8], 0.0)


def _edge_at_163(h: int = 240, w: int = 320) -> tuple[np.ndarray, np.ndarray]:
    """The true person mask of a frame with an edge at x = 163, and the network's view of it:
    a coarse, blurred mask (30 x 40) whose edge is off by a few pixels."""
    truth = np.zeros((h, w), np.float32)
    truth[:, 163:] = 1
    small = np.zeros((30, 40), np.float32)
    small[:, 21:] = 1
    small[:, 20] = 0.5
    return truth, small


def test_guided_upsampling_snaps_to_the_frame_edge():
    h, w = 240, 320
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, 163:] = 255                    # real edge at x = 163
    truth, small = _edge_at_163(h, w)
    plain = soft_threshold(guided_upsample(small, frame, radius=0, eps=1e-3), 0.5, 0.25)
    guided = soft_threshold(guided_upsample(small, frame, radius=8, eps=1e-3), 0.5, 0.25)
    err_plain = np.abs(plain - truth).mean()
    err_guided = np.abs(guided - truth).mean()
    assert guided.shape == (h, w)
    assert err_guided < 0.5 * err_plain


def test_refiner_output_shape_and_settings_validation():
    frame = np.full((480, 640, 3), 128, np.uint8)
    r = MaskRefiner()
    alpha = r(np.full((256, 256), 0.9, np.float32), frame)
    assert alpha.shape == (480, 640) and alpha.dtype == np.float32
    assert alpha.min() > 0.95
    with pytest.raises(ValueError):
        RefineSettings(threshold=1.5).validate()
    with pytest.raises(ValueError):
        RefineSettings(temporal=1.0).validate()


def _reference_colour_guided(p: np.ndarray, frame: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s colour guided filter written plainly (a per-pixel 3x3 solve in float64) on a
    1/4 grid, its coefficients upsampled bilinearly and applied to the full frame."""
    h, w = frame.shape[:2]
    guide = cv2.resize(frame, (w // 4, h // 4), interpolation=cv2.INTER_AREA).astype(np.float64) / 255
    p = cv2.resize(p, (w // 4, h // 4), interpolation=cv2.INTER_LINEAR).astype(np.float64)
    k = (2 * r + 1, 2 * r + 1)
    box = lambda x: cv2.boxFilter(x, -1, k)
    mean_i = np.stack([box(guide[..., c]) for c in range(3)], -1)
    mean_p = box(p)
    cov_ip = np.stack([box(guide[..., c] * p) for c in range(3)], -1) - mean_i * mean_p[..., None]
    sigma = np.empty(p.shape + (3, 3))
    for i in range(3):
        for j in range(3):
            sigma[..., i, j] = box(guide[..., i] * guide[..., j]) - mean_i[..., i] * mean_i[..., j]
    sigma += eps * np.eye(3)
    a = np.linalg.solve(sigma, cov_ip[..., None])[..., 0]
    b = mean_p - (a * mean_i).sum(-1)
    up = lambda x: cv2.resize(box(x).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    out = sum(up(a[..., c]) * (frame[..., c] / 255) for c in range(3)) + up(b)
    return np.clip(out, 0, 1)


def test_colour_guided_filter_matches_the_plain_formula():
    rng = np.random.default_rng(3)
    # A frame of smooth colour blobs and a noisy low-resolution mask.
    frame = cv2.resize(rng.integers(0, 256, (12, 16, 3)).astype(np.uint8), (320, 240),
                       interpolation=cv2.INTER_CUBIC)
    p = rng.random((64, 64)).astype(np.float32)
    ours = guided_upsample(p, frame, radius=8, eps=1e-3, colour=True)
    ref = _reference_colour_guided(p, frame, 2, 1e-3)
    assert ours.shape == (240, 320)
    assert ref.std() > 0.05                                   # the filter did something
    np.testing.assert_allclose(ours, ref, atol=1e-3)


def test_colour_guide_snaps_to_an_edge_the_grey_guide_cannot_see():
    h, w = 240, 320
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, :163] = (0, 0, 255)             # red, grey level 76
    frame[:, 163:] = (0, 130, 0)             # green, grey level 76: no edge in grey
    truth, small = _edge_at_163(h, w)
    grey = soft_threshold(guided_upsample(small, frame, radius=12, eps=3e-4, colour=False), 0.5, 0.25)
    colour = soft_threshold(guided_upsample(small, frame, radius=12, eps=3e-4, colour=True), 0.5, 0.25)
    err_grey = np.abs(grey - truth).mean()
    err_colour = np.abs(colour - truth).mean()
    assert colour.shape == (h, w)
    assert err_colour < 0.5 * err_grey


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 6, 8, 12])
def test_block_mean_is_the_mean_of_each_whole_block(factor):
    """By halvings or in one step, the mean of each factor x factor block from the top left; rows and
    columns past the last whole block are left out; uint8 by halves within half a grey level a rounding."""
    from bgswap.inference.refine import block_mean

    rng = np.random.default_rng(factor)
    h, w = 7 * factor + factor // 2, 11 * factor + (factor > 1)    # sizes the factor does not divide
    img = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    want = img[:7 * factor, :11 * factor].astype(np.float64).reshape(7, factor, 11, factor, 3).mean(axis=(1, 3))
    as_float = block_mean(img.astype(np.float32), factor)
    assert as_float.shape == (7, 11, 3) and np.abs(as_float - want).max() < 1e-3
    assert np.abs(block_mean(img, factor).astype(np.float64) - want).max() <= 0.5 + 1e-9   # one rounding
    halves = block_mean(img, factor, by_halves=True)
    twos = (factor & -factor).bit_length() - 1                   # halvings, then one step for the odd rest
    roundings = twos + (factor >> twos > 1)
    assert halves.dtype == np.uint8 and np.abs(halves.astype(np.float64) - want).max() <= 0.5 * max(1, roundings)


@pytest.mark.parametrize("colour_edges", [True, False])
@pytest.mark.parametrize("decontaminate", [False, True])
def test_a_head_cut_by_the_top_edge_keeps_no_strip_of_the_old_room(colour_edges, decontaminate):
    """A head touching the frame's top (the hair cut by the edge), light grey room, composited onto blue:
    the top rows beside the hair are the new background, and the hair reaches the top row (the
    guided filter's windows at the border neither drag the room in nor eat the hair)."""
    from bgswap.inference.backgrounds import ColorBackground
    from bgswap.inference.compose import Compositor

    h, w = 480, 640
    room, hair, blue = (200, 200, 200), (40, 50, 70), (200, 80, 20)
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (320, 40), (80, 110), 0, 0, 360, 1, -1)          # the head, its top cut off
    cv2.rectangle(mask, (170, 160), (470, h), 1, -1)                    # shoulders, cut by the bottom
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = room
    frame[mask > 0] = hair
    prob = cv2.resize(mask.astype(np.float32), (256, 192), interpolation=cv2.INTER_AREA)
    settings = RefineSettings(temporal=0.0, colour_edges=colour_edges, decontaminate=decontaminate)
    matte = MaskRefiner(settings).matte(prob, frame)
    out = Compositor(settings).__call__(frame, matte, ColorBackground(blue))
    top = out[:12].astype(np.int16)
    far_from_hair = cv2.dilate(mask, np.ones((9, 9), np.uint8))[:12] == 0
    assert np.abs(top[far_from_hair] - blue).max() <= 2          # no grey strip above or beside the head
    inside = cv2.erode(mask, np.ones((9, 9), np.uint8))[:12] > 0
    assert inside[0].any() and np.abs(top[inside] - hair).max() <= 2   # the hair reaches the top row
