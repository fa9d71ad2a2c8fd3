"""Room scenes for training and the room checks, on generated photos (and a tiny training run with paddle)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from training import scenes, teacher_labels
from training.config import load_config
from training.data import AugmentConfig, Augmenter, PortraitSet

from .training_data import CONFIGS, make_dataset


def make_rooms(root: Path, n: int = 40, size=(90, 120)) -> Path:
    """Textured 'rooms' (gradients and boxes), one path per line."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    lines = []
    for i in range(n):
        y, x = np.mgrid[0:size[0], 0:size[1]]
        img = np.dstack([x, y, (x + y) // 2]).astype(np.uint8)
        cv2.rectangle(img, (int(rng.integers(0, 60)), 10), (int(rng.integers(70, 119)), 60),
                      tuple(int(v) for v in rng.integers(0, 255, 3)), -1)
        cv2.imwrite(str(root / "images" / f"room_{i}.jpg"), img)
        lines.append(f"images/room_{i}.jpg")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return root / "list.txt"


def person(h=100, w=60, cut_bottom=True):
    img = np.full((h, w, 3), (60, 90, 200), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (w // 2, 25), 15, 1, -1)
    cv2.rectangle(mask, (10, 45), (w - 10, h - 1 if cut_bottom else h - 10), 1, -1)
    return img, mask


def test_held_out_split_is_stable_and_about_a_tenth():
    names = [f"images/pl_{i:05d}.jpg" for i in range(2000)]
    held = [n for n in names if scenes.is_held_out(n)]
    assert 0.07 < len(held) / len(names) < 0.13
    assert held == [n for n in names if scenes.is_held_out("/elsewhere/" + Path(n).name)]   # by file name only


def test_train_and_held_out_parts_do_not_overlap(tmp_path):
    lst = make_rooms(tmp_path / "rooms")
    train = scenes.load_photo_set(lst, held_out=False)
    held = scenes.load_photo_set(lst, held_out=True)
    assert len(train) + len(held) == 40 and not set(train.names) & set(held.names)


def test_a_person_cut_by_the_bottom_edge_stays_on_the_frames_bottom_edge():
    rng = np.random.default_rng(0)
    room = np.full((240, 320, 3), 30, np.uint8)
    img, mask = person()
    for _ in range(30):
        canvas, label = room.copy(), np.zeros((240, 320), np.float32)
        if not scenes.paste_person(canvas, label, img, mask, rng, colour_match=0.0):
            continue
        assert 0 <= label.min() and label.max() <= 1
        assert label[-1].max() > 0.5                               # the cut is not inside the frame
        changed = np.abs(canvas.astype(int) - room).sum(2) > 0
        assert not (changed & (label == 0)).any()                   # only the person's pixels changed


def test_two_people_give_the_union_of_their_alphas():
    rng = np.random.default_rng(3)
    room = np.full((200, 200, 3), 30, np.uint8)
    scene, alpha = scenes.pasted_scene(room, [person(), person()], rng, (128, 128))
    assert scene.shape == (128, 128, 3) and alpha.shape == (128, 128)
    assert alpha.max() <= 1.0 and (alpha > 0.5).mean() > 0.02
    assert not ((alpha > 0) & (alpha < 0.2)).mean() > 0.1          # soft only along the outline


def test_room_figures_measure_phantoms_and_pasted_iou(tmp_path):
    lst = make_rooms(tmp_path / "rooms")
    rooms = scenes.load_photo_set(lst, held_out=False)
    people = [("eg_0.jpg", *person())]
    check = scenes.pasted_check_set(people * 5, rooms, seed=0)
    assert [c[0] for c in check] == ["eg_0.jpg"] * 5
    again = scenes.pasted_check_set(people * 5, rooms, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(check, again))     # deterministic

    truth = {id(img): gt for _, img, gt in check}
    perfect = scenes.room_figures(lambda imgs: [truth.get(id(i), np.zeros(i.shape[:2])).astype(np.float32)
                                                for i in imgs], rooms, check, batch=3)
    assert (perfect.room_person_share, perfect.room_phantom_rate, perfect.pasted_person_iou) == (0.0, 0.0, 1.0)
    everything = scenes.room_figures(lambda imgs: [np.ones(i.shape[:2], np.float32) for i in imgs], rooms, check)
    assert everything.room_person_share == 1.0 and everything.room_phantom_rate == 1.0
    assert 0 < everything.pasted_person_iou < 1


def test_teacher_labels_are_cached_and_reloaded(tmp_path):
    lst = make_rooms(tmp_path / "people_rooms", n=4)
    calls = []

    def teacher(img):
        calls.append(img.shape)
        return np.full(img.shape[:2], 0.25, np.float32)

    assert teacher_labels.make_labels(teacher, lst, tmp_path / "labels", "a") == 4
    assert teacher_labels.make_labels(teacher, lst, tmp_path / "labels", "a") == 0          # cached
    assert teacher_labels.make_labels(lambda img: np.full(img.shape[:2], 0.75, np.float32), lst,
                                      tmp_path / "labels", "b") == 4
    alphas = teacher_labels.load_labels(lst, tmp_path / "labels", ["a"])
    assert len(alphas) == 4 and alphas[0].dtype == np.uint8 and abs(int(alphas[0][0, 0]) - 64) <= 1
    mean = teacher_labels.load_labels(lst, tmp_path / "labels", ["a", "b"])       # rebuilt from the cache
    assert abs(int(mean[0][0, 0]) - 128) <= 1 and len(calls) == 4
    with pytest.raises(FileNotFoundError, match="python -m training.teacher_labels --teachers c"):
        teacher_labels.load_labels(lst, tmp_path / "labels", ["a", "c"])


def test_scene_mix_rows(tmp_path):
    rooms = make_rooms(tmp_path / "rooms")
    pr = make_rooms(tmp_path / "people_rooms", n=20)
    teacher_labels.make_labels(lambda img: np.full(img.shape[:2], 0.8, np.float32), pr, tmp_path / "labels", "t")
    # the teachers see a person in the top half of the first ten "empty" rooms: those are left out
    teacher_labels.make_labels(lambda img: np.zeros(img.shape[:2], np.float32), rooms, tmp_path / "labels", "t")
    for rel in scenes.read_image_list(rooms)[:10]:
        p = teacher_labels.label_path(tmp_path / "labels", rooms, rel, "t")
        a = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        a[: a.shape[0] // 2] = 255
        cv2.imwrite(str(p), a)
    img, mask = person()
    people = PortraitSet(["eg_0"], [img], [mask])
    rng = np.random.default_rng(0)
    mix = scenes.SceneMix(scenes.SceneConfig(str(rooms), str(pr), str(tmp_path / "labels"), teachers=("t",),
                                             pasted=2, room=1, teacher=1), people, rng)
    assert mix.kinds() == ["pasted", "pasted", "room", "teacher"] and mix.per_batch == 4
    aug = Augmenter(people, AugmentConfig(color_p=0, blur_p=0, noise_p=0, jpeg_p=0), rng)
    kept = [n for n in scenes.read_image_list(rooms)[10:] if not scenes.is_held_out(n)]
    assert sorted(mix.rooms.names) == sorted(Path(n).name for n in kept)
    room_img, room_target = mix.sample("room", (48, 64), aug)
    assert room_img.shape == (48, 64, 3) and room_target.shape == (48, 64) and not room_target.any()
    every = scenes.SceneMix(scenes.SceneConfig(str(rooms), str(pr), str(tmp_path / "labels"), teachers=("t",),
                                               room_max_person=None), people, rng)
    assert len(every.rooms) == len(mix.rooms) + sum(not scenes.is_held_out(n) for n in
                                                    scenes.read_image_list(rooms)[:10])
    _, teacher_target = mix.sample("teacher", (64, 64), aug)
    assert np.allclose(teacher_target, 0.8, atol=0.01)
    _, pasted_target = mix.sample("pasted", (64, 48), aug)
    assert pasted_target.max() > 0.5
    with pytest.raises(ValueError, match="unknown scene kind"):
        mix.sample("beach", (64, 64), aug)


def test_soft_targets_give_plain_cross_entropy_on_hard_masks():
    paddle = pytest.importorskip("paddle")
    import paddle.nn.functional as F

    from training.losses import bisenet_loss, soft_ce

    rng = np.random.default_rng(0)
    logits = paddle.to_tensor(rng.normal(size=(2, 2, 8, 8)).astype("float32"))
    hard = rng.integers(0, 2, (2, 8, 8))
    plain = F.cross_entropy(logits, paddle.to_tensor(hard[:, None]), axis=1, reduction="none").squeeze(1)
    np.testing.assert_allclose(soft_ce(logits, paddle.to_tensor(hard.astype("float32"))).numpy(), plain.numpy(),
                               rtol=1e-5, atol=1e-6)
    edge = paddle.zeros([2, 8, 8])
    as_int, _ = bisenet_loss([logits] * 5, paddle.to_tensor(hard), edge)
    as_float, _ = bisenet_loss([logits] * 5, paddle.to_tensor(hard.astype("float32")), edge)
    assert abs(float(as_int) - float(as_float)) < 1e-5
    # a soft target of 0.5 is best met by a margin of 0
    zero = paddle.zeros([1, 2, 4, 4])
    half = paddle.full([1, 4, 4], 0.5)
    assert float(soft_ce(zero, half).mean()) < float(soft_ce(paddle.to_tensor(
        np.stack([np.zeros((4, 4)), np.full((4, 4), 2.0)])[None].astype("float32")), half).mean())


@pytest.mark.slow
def test_training_with_room_scenes_reports_the_room_checks(tmp_path):
    pytest.importorskip("paddle")
    import json

    from training import train

    root = make_dataset(tmp_path / "d")
    rooms = make_rooms(tmp_path / "rooms", n=30)
    pr = make_rooms(tmp_path / "people_rooms", n=12)
    for lst in (pr, rooms):
        teacher_labels.make_labels(lambda img: np.zeros(img.shape[:2], np.float32), lst, tmp_path / "labels", "t")
    cfg = load_config(CONFIGS / "portrait_bisenetv2.yml")
    cfg.update(data_root=str(root), cache_dir=str(tmp_path / "cache"), run_dir=str(tmp_path / "run"),
               batch_size=4, stages=[[2, 64]], resume_from=None, val_every=2, save_every=2, log_every=1,
               cache_long_side=96,
               scenes={"rooms_list": str(rooms), "people_rooms_list": str(pr),
                       "teacher_labels": str(tmp_path / "labels"), "teachers": ["t"], "pasted": 1, "room": 1,
                       "teacher": 1})
    train.train(cfg)
    val = [json.loads(line) for line in (tmp_path / "run" / "val.jsonl").read_text().splitlines()]
    assert {"room_share", "room_phantom", "pasted_iou"} <= set(val[-1])
    assert val[-1]["rooms"] == sum(scenes.is_held_out(p) for p in scenes.read_image_list(rooms))
    assert val[-1]["pasted"] == 3                                    # the val list's people
    assert "room scenes: 3 of every 4 rows" in (tmp_path / "run" / "train.log").read_text()
