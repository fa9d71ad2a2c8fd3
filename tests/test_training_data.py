"""Training data: file lists, the decoded cache, augmentation, batches and sampling."""
from __future__ import annotations

import numpy as np
import pytest

from training.data import (AugmentConfig, Augmenter, BatchLoader, HardExampleSampler, boundary_band, load_portrait_set,
                           random_crop, read_file_list)

from .training_data import make_dataset


def test_file_list_and_loading(tmp_path):
    root = make_dataset(tmp_path / "d")
    pairs = read_file_list(root / "train.txt")
    assert len(pairs) == 6 and pairs[0][0].is_file()
    (root / "bad.txt").write_text("only_one_column.jpg\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        read_file_list(root / "bad.txt")
    data = load_portrait_set(root / "train.txt", tmp_path / "cache", long_side=80)
    assert len(data) == 6 and max(data.images[0].shape[:2]) == 80
    assert set(np.unique(data.masks[0])) == {0, 1} and len(data.plates) == 6
    again = load_portrait_set(root / "train.txt", tmp_path / "cache", long_side=80)   # from the cache
    np.testing.assert_array_equal(again.masks[3], data.masks[3])


def test_augmenter_keeps_image_and_mask_aligned(tmp_path):
    root = make_dataset(tmp_path / "d")
    data = load_portrait_set(root / "train.txt", None, long_side=120)
    cfg = AugmentConfig(recompose_p=1.0, color_p=0, blur_p=0, noise_p=0, jpeg_p=0, rotate_p=0)
    aug = Augmenter(data, cfg, np.random.default_rng(3))
    for i in range(20):
        shape = (64, 64) if i % 2 else (48, 64)
        img, mask = aug.sample(i % 6, shape)
        assert img.shape == (*shape, 3) and mask.shape == shape
        assert set(np.unique(mask)) <= {0, 1}
        if mask.sum() > 50 and (mask == 0).sum() > 50:
            # the person is the skin-coloured blob: its pixels are brighter than the background's
            assert img[mask > 0].mean() > img[mask == 0].mean() + 30
    square = np.zeros((20, 20), np.uint8)
    square[5:15, 5:15] = 1
    band = boundary_band(square, 2)
    assert band[5, 10] == 1 and band[10, 10] == 0 and band[0, 0] == 0


def test_batch_loader_drops_batches_made_before_a_settings_change(tmp_path):
    root = make_dataset(tmp_path / "d")
    data = load_portrait_set(root / "train.txt", None, long_side=80)
    loader = BatchLoader(data, AugmentConfig(), batch_size=2, seed=0)
    for _ in range(10):        # the worker keeps the queue full, so stale batches are always waiting
        loader.set_size(96)
        x, y, e, idx = loader.next()
        assert x.shape == (2, 3, 96, 96) and y.shape == e.shape == (2, 96, 96) and idx.shape == (2,)
        loader.set_augment(AugmentConfig(rotate_p=0.0))
        assert loader.aug.cfg.rotate_p == 0.0 and loader.next()[1].shape == (2, 96, 96)
        loader.set_size(64)
        assert loader.next()[0].shape == (2, 3, 64, 64)
    loader.close()


def test_batch_loader_shapes_batches_like_the_frames_it_trains_for(tmp_path):
    root = make_dataset(tmp_path / "d")
    data = load_portrait_set(root / "train.txt", None, long_side=120)
    loader = BatchLoader(data, AugmentConfig(recompose_p=0.0), batch_size=2, seed=0)
    loader.set_size(128)
    loader.set_aspects([0.5625, 1.3333])            # 16:9 landscape and 3:4 portrait frames
    seen = set()
    for _ in range(12):
        x, y, e, _idx = loader.next()
        assert x.shape[2:] == y.shape[1:] == e.shape[1:]
        seen.add(y.shape[1:])
    assert seen == {(96, 128), (128, 96)}
    loader.close()


def test_crops_keep_their_aspect_where_a_side_would_not_fit():
    rng = np.random.default_rng(0)
    for h, w, aspect in [(800, 600, 16 / 9), (600, 800, 3 / 4), (500, 500, 1.0), (300, 1000, 4 / 3)]:
        for area in (0.5 * h * w, 1.0 * h * w):
            ys, xs = random_crop(h, w, area, aspect, rng)
            ch, cw = ys.stop - ys.start, xs.stop - xs.start
            assert 0 <= ys.start and ys.stop <= h and 0 <= xs.start and xs.stop <= w
            assert abs(cw / ch / aspect - 1) < 0.02, (h, w, aspect, ch, cw)      # resizing it never stretches


def test_hard_example_sampler_draws_high_loss_images_more_often():
    s = HardExampleSampler(4)
    rng = np.random.default_rng(0)
    assert np.bincount(s.draw(rng, 4000, boost=3.0), minlength=4).min() > 800   # nothing seen: uniform
    s.record(np.array([0, 1, 2, 3]), np.array([0.1, 0.2, 0.4, 50.0]))
    s.record(np.array([2]), np.array([0.0]))             # smoothed: 0.5 * 0.4 + 0.5 * 0.0 = 0.2
    assert s.loss[2] == pytest.approx(0.2) and s.loss[1] == pytest.approx(0.2)
    s.record(np.array([2]), np.array([0.3]))             # 0.25: now between images 1 and 3
    counts = np.bincount(s.draw(rng, 20000, boost=3.0), minlength=4)
    assert counts[0] < counts[1] < counts[2] < counts[3]
    # by rank, not by value: the outlier loss of 50 gets 4x the easiest image, not 500x
    assert 3.0 < counts[3] / counts[0] < 5.0
    assert np.bincount(s.draw(rng, 4000, boost=0.0), minlength=4).min() > 800   # boost 0: uniform again


def test_batch_loader_reports_worker_failures(tmp_path):
    root = make_dataset(tmp_path / "d")
    data = load_portrait_set(root / "train.txt", None, long_side=80)
    data.images[0] = None      # a corrupt sample must surface, not hang training
    data.images[1:] = [None] * 5
    loader = BatchLoader(data, AugmentConfig(), batch_size=2, seed=0)
    with pytest.raises(RuntimeError, match="batch loader"):
        loader.next()
    loader.close()


def test_objects_go_behind_the_person_and_touch_their_outline():
    """training.distractors: a real portrait (its true mask) gets objects beside the person; the person's
    own pixels are untouched, and the changed pixels reach the person's outline on most draws; with
    nobody there, objects still come, some against a side of the frame."""
    import cv2

    from training.distractors import add_objects_behind

    from .conftest import DEMO_PHOTO, ROOT

    img = cv2.imread(str(DEMO_PHOTO))
    mask = (cv2.imread(str(ROOT / "assets" / "demo" / "astronaut_person.png"), cv2.IMREAD_GRAYSCALE) > 127)
    img, mask = cv2.resize(img, (256, 256)), cv2.resize(mask.astype(np.uint8), (256, 256), interpolation=cv2.INTER_NEAREST)
    room = np.full((240, 320, 3), (40, 160, 90), np.uint8)
    ring = cv2.dilate(mask, np.ones((5, 5), np.uint8)) - mask           # background pixels at the outline
    rng = np.random.default_rng(0)
    touching = 0
    for k in range(40):            # the person as a float alpha, and as the uint8 0/1 mask portraits give
        out = add_objects_behind(img, mask.astype(np.float32) if k % 2 else mask, rng, [room], count=1)
        assert out.shape == img.shape and out.dtype == np.uint8
        changed = np.abs(out.astype(int) - img).max(axis=2) > 0
        assert not changed[mask > 0].any()                              # the person stays in front
        touching += bool(changed[ring > 0].any())
    assert touching >= 30
    empty = np.zeros((256, 256), np.float32)             # nobody there: objects anywhere, often at a side
    at_side = 0
    for _ in range(40):
        changed = np.abs(add_objects_behind(img, empty, rng, [room]).astype(int) - img).max(axis=2) > 0
        assert changed.any()
        at_side += bool(changed[:, 0].any() or changed[:, -1].any())
    assert 10 <= at_side <= 35
    everyone = np.ones((256, 256), np.uint8)                # a person filling the frame: no room beside them
    np.testing.assert_array_equal(add_objects_behind(img, everyone, rng, [room], count=2), img)


def test_teacher_fit_compares_a_model_with_its_labels():
    """training.teacher_fit.fit on the demo photo with its person mask as the teacher's label: the label
    itself fits exactly, the shipped model partly, an empty prediction not at all."""
    import cv2

    from bgswap.inference import Segmenter
    from training.teacher_fit import fit

    from .conftest import DEMO_PHOTO, ROOT

    img = cv2.imread(str(DEMO_PHOTO))
    label = cv2.imread(str(ROOT / "assets" / "demo" / "astronaut_person.png"), cv2.IMREAD_GRAYSCALE)
    exact = fit(lambda i: label / 255.0, [img], [label])
    assert exact.iou == 1.0 and exact.agreement == 1.0 and exact.model_share == exact.teacher_share > 0.3
    model = fit(Segmenter(compute="cpu", threads=1), [img], [label])
    assert 0.5 < model.iou < 1.0                      # (it also takes the helmet she holds and the flag)
    nothing = fit(lambda i: np.zeros(i.shape[:2], np.float32), [img], [label], rooms=False)
    assert nothing.iou == 0.0 and nothing.model_share == 0.0 and nothing.model_phantom is None
    room = np.zeros_like(label)                       # an empty room: a blob over 0.5 % of it is a phantom
    assert fit(lambda i: label / 255.0, [img], [room]).model_phantom == 1.0
    assert fit(lambda i: np.zeros(i.shape[:2], np.float32), [img], [room]).model_phantom == 0.0
