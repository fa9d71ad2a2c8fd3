"""Mask refinement: soft threshold, largest person, temporal smoothing, edge-aware upsampling."""
from __future__ import annotations

import numpy as np
import pytest

from inference.refine import (MaskRefiner, RefineSettings, TemporalFilter, guided_upsample, keep_largest_region,
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


def test_guided_upsampling_snaps_to_the_frame_edge():
    h, w = 240, 320
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, 163:] = 255                    # real edge at x = 163
    truth = np.zeros((h, w), np.float32)
    truth[:, 163:] = 1
    # The network's view: a coarse, blurred mask whose edge is off by a few pixels.
    small = np.zeros((30, 40), np.float32)
    small[:, 21:] = 1
    small[:, 20] = 0.5
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
