"""Training, export and evaluation commands on a tiny generated data set (needs paddle)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.data import (AugmentConfig, Augmenter, BatchLoader, HardExampleSampler, boundary_band, load_portrait_set,
                           read_file_list)


def make_dataset(root: Path, n: int = 6) -> Path:
    """Blob 'people' on textured backgrounds, in PaddleSeg's list format."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    lines = []
    for i in range(n):
        img = rng.integers(0, 120, (120, 90, 3), dtype=np.uint8)
        mask = np.zeros((120, 90), np.uint8)
        cv2.ellipse(mask, (45 + i, 50), (18, 24), 0, 0, 360, 1, -1)
        cv2.rectangle(mask, (20, 80), (70, 119), 1, -1)
        img[mask > 0] = (200, 170, 150)
        cv2.imwrite(str(root / "images" / f"eg_{i}.jpg"), img)
        cv2.imwrite(str(root / "masks" / f"eg_{i}.png"), mask)
        lines.append(f"images/eg_{i}.jpg masks/eg_{i}.png")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "val.txt").write_text("\n".join(lines[:3]) + "\n")
    return root


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
        img, mask = aug.sample(i % 6, 64)
        assert img.shape == (64, 64, 3) and mask.shape == (64, 64)
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


def test_train_resume_export_evaluate(tmp_path):
    pytest.importorskip("paddle")
    from training import evaluate, export, train

    root = make_dataset(tmp_path / "d")
    cfg = train.load_config(Path(__file__).resolve().parent.parent / "training/configs/portrait_bisenetv2.yml")
    cfg.update(data_root=str(root), cache_dir=str(tmp_path / "cache"), run_dir=str(tmp_path / "run"),
               batch_size=2, stages=[[3, 64], [2, 96, "plain"]], resume_from=None, val_every=5, save_every=2, log_every=1, cache_long_side=96)
    cfg["augment_profiles"] = {"plain": {"recompose_p": 0.0, "rotate_p": 0.0, "hard_boost": 2.0}}
    cfg["optimizer"]["warmup_iters"] = 2
    train.train(cfg)
    run = tmp_path / "run"
    import paddle

    ck = paddle.load(str(run / "last.pdckpt"))
    assert ck["iteration"] == 5 and (run / "best.pdparams").is_file()
    sample_loss = np.asarray(ck["sample_loss"])       # per-image losses seen so far, kept for resuming
    assert sample_loss.shape == (6,) and np.nanmin(sample_loss) > 0 and (~np.isnan(sample_loss)).sum() >= 2
    val = [json.loads(line) for line in (run / "val.jsonl").read_text().splitlines()]
    assert val[-1]["iteration"] == 5 and 0 <= val[-1]["miou"] <= 1
    assert "it 3: augmentation now {'recompose_p': 0.0" in (run / "train.log").read_text()
    cfg["stages"] = [[3, 64], [2, 96, "plain"], [2, 96]]
    cfg["distill"] = {"teacher": str(run / "best.pdparams"), "weight": 1.0}
    cfg["freeze_bn"] = True
    train.train(cfg)              # resumes at 5 with the base augmentation, runs to 7, distilling, BatchNorm frozen
    ck7 = paddle.load(str(run / "last.pdckpt"))
    assert ck7["iteration"] == 7
    stats = [k for k in ck["model"] if k.endswith("._mean") or k.endswith("._variance")]
    learnt = [k for k in ck["model"] if k not in stats]
    assert stats and all(np.array_equal(ck["model"][k].numpy(), ck7["model"][k].numpy()) for k in stats)
    assert not all(np.all(ck["model"][k].numpy() == 0) for k in stats if k.endswith("._mean"))  # unfrozen, they moved
    assert any(not np.array_equal(ck["model"][k].numpy(), ck7["model"][k].numpy()) for k in learnt)
    log_text = (run / "train.log").read_text()
    assert "resumed from" in log_text and log_text.count("augmentation now") == 1
    assert "distilling from" in log_text and " kd " in log_text.split("distilling from")[1]
    cfg["distill"] = {"weight": 1.0}
    with pytest.raises(ValueError, match="distill needs teacher"):
        train.train(cfg)
    cfg.pop("distill")

    out = export.export(run / "best.pdparams", tmp_path / "model", input_size=96, version="test")
    assert {p.name for p in out.iterdir()} >= {"model.json", "model.pdiparams", "model.onnx", "meta.json"}
    assert export.parity(out) < 1e-4
    r = evaluate.evaluate(root / "val.txt", out, backend="onnxruntime")
    assert r["images"] == 3 and r["input_size"] == [96, 96]
    assert 0 <= r["person_iou"] <= 1 and 0 <= r["boundary_f"] <= 1 and r["model_ms_mean"] > 0
    assert r["precision"] == "fp32"                    # exported without a calibration list

    from inference import Segmenter
    from inference.model_meta import ModelMeta
    from training.quantize import INT8_FILE, quantize_int8

    q = quantize_int8(out, root / "train.txt", images=3, check_images=2)
    meta = ModelMeta.load(out)
    assert q["calibration_images"] == 3 and q["check_images"] == 2 and 0 <= q["mask_agreement"] <= 1
    assert meta.extra["int8"] == q and (meta.int8_onnx == INT8_FILE) == q["shipped"]
    assert (out / INT8_FILE).is_file()
    if q["shipped"]:
        r8 = evaluate.evaluate(root / "val.txt", out, backend="onnxruntime")
        assert r8["precision"] == "int8" and r8["images"] == 3
    q = quantize_int8(out, root / "train.txt", images=3, check_images=2, min_agreement=1.01)   # cannot pass
    assert not q["shipped"] and ModelMeta.load(out).int8_onnx == ""
    assert Segmenter(out, backend="onnxruntime", device="cpu").backend.precision == "fp32"
    export.export(run / "best.pdparams", out, input_size=96, version="test2")   # no stale int8 file survives
    assert not (out / INT8_FILE).exists() and ModelMeta.load(out).int8_onnx == ""


def test_lr_schedule_and_stages():
    from training.train import lr_at, stage_size

    oc = {"lr": 0.1, "warmup_iters": 10, "poly_power": 0.9}
    lrs = [lr_at(i, 100, oc) for i in range(100)]
    assert lrs[0] < lrs[9] < lrs[10] and lrs[10] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] < 0.01
    assert [stage_size(i, [[5, 64], [5, 96]]) for i in (0, 4, 5, 9, 12)] == [64, 64, 96, 96, 96]


def test_stage_augment_profiles():
    from training.train import check_stages, stage_augment

    cfg = {"stages": [[5, 64], [5, 96, "light"]], "augment": {"rotate_p": 0.4, "blur_p": 0.2},
           "augment_profiles": {"light": {"rotate_p": 0.1}}}
    assert stage_augment(4, cfg) == {"rotate_p": 0.4, "blur_p": 0.2}
    assert stage_augment(5, cfg) == {"rotate_p": 0.1, "blur_p": 0.2}
    check_stages(cfg)
    cfg["augment_profiles"]["light"]["rotate_probability"] = 0.1
    with pytest.raises(ValueError, match=r"stage \[5, 96, 'light'\].*rotate_probability"):
        check_stages(cfg)
    del cfg["augment_profiles"]["light"]["rotate_probability"]
    cfg["stages"].append([5, 96, "hard"])                 # a profile can extend another one
    cfg["augment_profiles"]["hard"] = {"extends": "light", "blur_p": 0.0}
    assert stage_augment(10, cfg) == {"rotate_p": 0.1, "blur_p": 0.0}
    cfg["augment_profiles"]["light"]["extends"] = "hard"
    with pytest.raises(ValueError, match="loop: hard -> light -> hard"):
        stage_augment(10, cfg)
    cfg["stages"][1][2] = "missing"
    with pytest.raises(ValueError, match=r"stage \[5, 96, 'missing'\].*'missing' is not in augment_profiles"):
        stage_augment(5, cfg)


def test_stage_loss_overrides():
    from training.train import check_stages, stage_augment, stage_loss

    cfg = {"stages": [[5, 64], [5, 96, "hard"], [5, 96, "lovasz"]], "loss": {"dice_weight": 0.5},
           "augment": {"rotate_p": 0.4},
           "augment_profiles": {"hard": {"rotate_p": 0.1, "loss": {"dice_weight": 0.2}},
                                "lovasz": {"extends": "hard", "loss": {"lovasz_weight": 1.0}}}}
    assert stage_loss(0, cfg) == {"dice_weight": 0.5}
    assert stage_loss(5, cfg) == {"dice_weight": 0.2}
    assert stage_loss(10, cfg) == {"dice_weight": 0.2, "lovasz_weight": 1.0}   # merged down the extends chain
    assert stage_augment(10, cfg) == {"rotate_p": 0.1}                          # loss is not an augmentation
    check_stages(cfg)
    cfg["augment_profiles"]["lovasz"]["loss"]["lovasz_wieght"] = 1.0
    with pytest.raises(ValueError, match=r"stage \[5, 96, 'lovasz'\].*lovasz_wieght"):
        check_stages(cfg)


def test_lovasz_hinge_is_the_jaccard_loss_at_hard_errors_and_drops_as_masks_improve():
    import paddle

    from training.losses import bisenet_loss, lovasz_hinge

    rng = np.random.default_rng(3)
    gt = rng.random((4, 24, 24)) < 0.4
    pred = rng.random((4, 24, 24)) < 0.5
    sign = np.where(gt, 1.0, -1.0)
    labels = paddle.to_tensor(gt.astype("int64"))          # N x H x W, as the batch loader gives them

    def logits_for(margin):
        return paddle.to_tensor(np.stack([np.zeros_like(margin), margin], 1).astype("float32"))

    # margin error 0 where the prediction is right, 1 where it is wrong: exactly 1 - IoU per image
    hard = lovasz_hinge(logits_for(np.where(gt == pred, sign, 0.0)), labels)
    ious = [(g & p).sum() / (g | p).sum() for g, p in zip(gt, pred)]
    assert float(hard) == pytest.approx(1 - np.mean(ious), abs=1e-5)
    # fixing half of the wrong pixels lowers it; a confident right answer scores 0
    better = pred.copy()
    wrong = np.argwhere(gt != pred)
    for i, y, x in wrong[::2]:
        better[i, y, x] = gt[i, y, x]
    assert float(lovasz_hinge(logits_for(np.where(gt == better, sign, 0.0)), labels)) < float(hard)
    assert float(lovasz_hinge(logits_for(2 * sign), labels)) == 0.0
    edge = paddle.zeros([4, 24, 24])
    outs = [logits_for(sign * 0.5)] * 5
    plain, parts = bisenet_loss(outs, labels, edge)
    with_lovasz, parts_l = bisenet_loss(outs, labels, edge, lovasz_weight=2.0)
    assert "lovasz" not in parts
    assert float(with_lovasz) == pytest.approx(float(plain) + 2.0 * parts_l["lovasz"], rel=1e-5)


def test_boundary_f_score():
    from training.evaluate import boundary_f

    gt = np.zeros((50, 50), bool)
    gt[10:40, 10:40] = True
    assert boundary_f(gt, gt) == 1.0
    shifted = np.roll(gt, 2, axis=1)
    far = np.roll(gt, 9, axis=1)
    assert boundary_f(shifted, gt) > 0.8 > boundary_f(far, gt)


def test_flip_teacher_is_mirror_symmetric_and_distillation_pulls_towards_it(tmp_path):
    import paddle

    from training.distill import FlipTeacher, distill_loss
    from training.model import build_model, training_logits

    with pytest.raises(FileNotFoundError, match="distill.teacher"):
        FlipTeacher(tmp_path / "missing.pdparams")
    paddle.seed(0)
    paddle.save(build_model().state_dict(), str(tmp_path / "t.pdparams"))
    x = paddle.randn([2, 3, 64, 96])
    mirror = lambda t: paddle.flip(t, [t.ndim - 1])
    teacher = FlipTeacher(tmp_path / "t.pdparams")
    t = teacher(x)
    assert t.shape == [2, 64, 96] and float(t.std()) > 1e-3
    assert float((teacher(mirror(x)) - mirror(t)).abs().max()) < 1e-5          # mirror in, mirror out
    single = FlipTeacher(tmp_path / "t.pdparams", flip=False)
    assert float((single(mirror(x)) - mirror(single(x))).abs().max()) > 1e-3   # a single pass is not

    logit = paddle.log(t / (1 - t))
    agree = paddle.stack([paddle.zeros_like(logit), logit], axis=1)
    assert float(distill_loss(agree, t)) < 1e-5 < float(distill_loss(agree * 0.5, t))

    paddle.seed(1)
    student = build_model()
    opt = paddle.optimizer.Adam(1e-3, parameters=student.parameters())

    def gap() -> float:
        student.eval()
        with paddle.no_grad():
            p = paddle.nn.functional.softmax(student(x)[0], axis=1)[:, 1]
        student.train()
        return float((p - t).abs().mean())

    before = gap()
    for _ in range(8):
        loss = distill_loss(training_logits(student, x)[0], t)
        loss.backward()
        opt.step()
        opt.clear_grad()
    assert gap() < 0.7 * before


def test_export_wrapper_gives_the_softmax_person_probability():
    import paddle

    from training.model import PersonProbability, build_model

    paddle.seed(0)
    model = build_model()
    model.eval()
    x = paddle.randn([2, 3, 96, 128])
    want = paddle.nn.functional.softmax(model(x)[0], axis=1)[:, 1:2].numpy()
    got = PersonProbability(model)(x).numpy()
    assert got.shape == (2, 1, 96, 128)
    assert np.abs(got - want).max() < 1e-5 and want.std() > 1e-3     # an untrained net still varies


def test_edge_head_learns_resumes_and_exports(tmp_path):
    pytest.importorskip("paddle")
    import paddle

    from training import evaluate, export, train
    from training.model import build_model, person_margin
    from training.train_edge_head import backbone_outputs, train_head

    root = make_dataset(tmp_path / "d")
    cfg = train.load_config(Path(__file__).resolve().parent.parent / "training/configs/portrait_bisenetv2.yml")
    cfg.update(data_root=str(root), cache_dir=str(tmp_path / "cache"), cache_long_side=96)
    paddle.seed(0)
    net = build_model()                  # an untrained backbone: its margin says nothing, the photo does
    paddle.save(net.state_dict(), str(tmp_path / "net.pdparams"))
    run = tmp_path / "run"
    args = dict(cfg=cfg, weights=tmp_path / "net.pdparams", run_dir=run, cache_dir=tmp_path / "views",
                size=64, augmented=1, batch=4, lr=1e-2)
    assert train_head(epochs=10, **args)["epoch"] >= 1
    best = train_head(epochs=12, **args)                 # resumes after epoch 10
    val = [json.loads(line) for line in (run / "val.jsonl").read_text().splitlines()]
    assert [v["epoch"] for v in val] == list(range(13))  # epoch 0: the new head, which adds nothing
    assert best["miou"] == max(v["miou"] for v in val[1:]) and best["miou"] > val[0]["miou"] + 0.1

    started = dict(args, run_dir=tmp_path / "run_from", head_from=run / "best.pdparams")
    train_head(epochs=1, **started)        # a head taken from other weights: it starts where that one ended
    first = json.loads((tmp_path / "run_from" / "val.jsonl").read_text().splitlines()[0])
    assert abs(first["miou"] - best["miou"]) < 1e-6
    with pytest.raises(ValueError, match="no edge head"):
        train_head(epochs=1, **dict(started, run_dir=tmp_path / "run_none", head_from=tmp_path / "net.pdparams"))

    state = paddle.load(str(run / "best.pdparams"))
    assert any(k.startswith("edge_head.") for k in state)
    assert all(np.array_equal(state[k].numpy(), v.numpy()) for k, v in net.state_dict().items())  # frozen

    model = build_model(edge_head=True)
    model.set_state_dict(state)
    model.eval()
    imgs = np.stack([cv2.resize(cv2.imread(str(p)), (64, 64), interpolation=cv2.INTER_AREA)
                     for p, _ in read_file_list(root / "val.txt")])
    margin8, detail4 = backbone_outputs(model, imgs)     # what the head was trained on ...
    from training.data import to_chw_rgb

    x = paddle.to_tensor(to_chw_rgb(imgs))
    with paddle.no_grad():
        trained_on = model.edge_head(paddle.to_tensor(margin8.astype(np.float32)),
                                     paddle.to_tensor(detail4.astype(np.float32)), x).numpy()
        exported = person_margin(model, x).numpy()      # ... is what the exported network computes
    assert np.abs(trained_on - exported).max() < 0.02 * max(1.0, np.abs(exported).max())

    out = export.export(run / "best.pdparams", tmp_path / "model", input_size=64, version="head")
    assert export.parity(out) < 1e-4
    plain = export.export(tmp_path / "net.pdparams", tmp_path / "plain", input_size=64, version="plain")
    with_head = evaluate.evaluate(root / "val.txt", out)
    without = evaluate.evaluate(root / "val.txt", plain)
    assert with_head["person_iou"] > without["person_iou"] + 0.1

    # fine-tuning the network and its head together, from those weights
    cfg.update(run_dir=str(tmp_path / "joint"), edge_head=True, init_weights=str(run / "best.pdparams"),
               resume_from=None, batch_size=2, stages=[[2, 64]], val_every=2, save_every=2, log_every=1)
    cfg["optimizer"]["warmup_iters"] = 1
    train.train(cfg)
    joint = paddle.load(str(tmp_path / "joint" / "last.pdckpt"))["model"]
    assert joint["edge_head.out.weight"].shape == state["edge_head.out.weight"].shape
    assert not np.array_equal(joint["edge_head.out.weight"].numpy(), state["edge_head.out.weight"].numpy())
    assert not np.array_equal(joint["head.conv_1x1.weight"].numpy(), state["head.conv_1x1.weight"].numpy())
    assert "starting from the weights in" in (tmp_path / "joint" / "train.log").read_text()


def _resize_graph(sizes_from_shape: bool):
    """x (1x1xHxW) -> Resize to twice its size, or to a fixed 16 x 16, with the sizes computed
    at run time from Shape/Slice/Concat as paddle2onnx writes them."""
    from onnx import TensorProto, helper, numpy_helper

    c = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)  # noqa: E731
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Slice", ["shape", "s0", "s2"], ["nc"]),
             helper.make_node("Slice", ["shape", "s2", "s4"], ["hw"])]
    if sizes_from_shape:
        nodes.append(helper.make_node("Mul", ["hw", "two"], ["hw_out"]))
    else:
        nodes.append(helper.make_node("Identity", ["fixed"], ["hw_out"]))
    nodes += [helper.make_node("Concat", ["nc", "hw_out"], ["sizes"], axis=0),
              helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear",
                               coordinate_transformation_mode="half_pixel")]
    inits = [c("s0", [0]), c("s2", [2]), c("s4", [4]), c("two", [2, 2]), c("fixed", [16, 16])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, None, None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, None, None])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("sizes_from_shape", [True, False])
def test_resize_scales_are_fixed_only_where_the_ratio_is(tmp_path, sizes_from_shape):
    import onnx
    import onnxruntime as ort

    from training.resize_scales import fix_resize_scales

    path = tmp_path / "m.onnx"
    onnx.save(_resize_graph(sizes_from_shape), str(path))
    before = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert fix_resize_scales(path) == (1 if sizes_from_shape else 0)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops == (["Resize"] if sizes_from_shape else ["Shape", "Slice", "Identity", "Concat", "Resize"])
    after = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for h, w in ((32, 32), (64, 96), (8, 40)):
        x = rng.standard_normal((1, 1, h, w)).astype(np.float32)
        want, got = before.run(None, {"x": x})[0], after.run(None, {"x": x})[0]
        assert got.shape == want.shape == ((1, 1, 2 * h, 2 * w) if sizes_from_shape else (1, 1, 16, 16))
        assert np.abs(got - want).max() < 1e-5


def _weights_with_a_working_head(path, seed: int):
    """Random weights with an edge head whose output convs are not zero (so it changes the output)."""
    import paddle

    from training.model import build_model

    paddle.seed(seed)
    state = build_model(edge_head=True).state_dict()
    for name in ("edge_head.out.weight", "edge_head.half_out.weight"):
        state[name].set_value(paddle.randn(state[name].shape) * 0.5)
    paddle.save(state, str(path))
    return path


def test_exported_resizes_have_fixed_scales_and_agree_with_paddle_at_other_sizes(tmp_path):
    import onnx

    from inference import Segmenter
    from training import export

    out = export.export(_weights_with_a_working_head(tmp_path / "w.pdparams", seed=3), tmp_path / "model",
                        input_size=64, version="scales")
    graph = onnx.load(str(out / "model.onnx")).graph
    inits = {i.name for i in graph.initializer}
    resizes = [n for n in graph.node if n.op_type == "Resize"]
    assert len(resizes) == 8 and all(len(n.input) == 3 and n.input[2] in inits for n in resizes)
    assert not [n for n in graph.node if n.op_type == "Shape"]
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    for size in ((64, 64), (96, 128), (160, 96)):
        a = Segmenter(out, backend="onnxruntime", device="cpu", precision="fp32", input_size=size)
        b = Segmenter(out, backend="paddle", device="cpu", input_size=size)
        pa, pb = a.predict_lowres(frame), b.predict_lowres(frame)
        assert pa.shape == size and pb.std() > 1e-3
        assert np.abs(pa - pb).max() < 1e-4


@pytest.mark.parametrize("edge_head, mirror_average", [(True, True), (False, False)])
def test_weights_come_back_from_an_export(tmp_path, edge_head, mirror_average):
    import paddle

    from training import export
    from training.model import build_model
    from training.weights_from_export import weights_from_export

    paddle.seed(5)
    model = build_model(edge_head=edge_head)
    state = model.state_dict()
    for name in [k for k in state if k.startswith("edge_head.") and "out" in k]:   # a head that is not zero
        state[name].set_value(paddle.randn(state[name].shape))
    paddle.save(state, str(tmp_path / "w.pdparams"))
    out = export.export(tmp_path / "w.pdparams", tmp_path / "model", input_size=64, version="w",
                        mirror_average=mirror_average)
    back = weights_from_export(out)
    assert set(back) == set(state)
    exported = [k for k in state if not k.startswith("aux_head")]
    assert all(np.array_equal(back[k], state[k].numpy()) for k in exported)
    assert any("edge_head" in k for k in back) == edge_head
    with pytest.raises(FileNotFoundError, match="model.json"):
        weights_from_export(tmp_path)


def test_widening_keeps_the_output_and_lets_the_copies_learn_apart(tmp_path):
    import paddle

    from training.model import build_model, lambd_of, person_margin, training_logits
    from training.widen import widen

    paddle.seed(7)
    narrow = build_model(edge_head=True)
    paddle.save(narrow.state_dict(), str(tmp_path / "n.pdparams"))
    state = widen(tmp_path / "n.pdparams")
    assert lambd_of(state) == 0.5
    wide = build_model(edge_head=True, lambd=0.5)
    wide.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    narrow.eval()
    wide.eval()
    x = paddle.randn([2, 3, 96, 64])
    with paddle.no_grad():
        a, b = person_margin(narrow, x).numpy(), person_margin(wide, x).numpy()
    assert a.std() > 1e-3 and np.abs(a - b).max() < 1e-4 * max(1.0, np.abs(a).max())

    key = "sb.stem.conv._conv.weight"         # a conv on the image, widened: its two copies start equal
    w = state[key]
    assert w.shape[0] == 2 * narrow.state_dict()[key].shape[0] and np.array_equal(w[: len(w) // 2], w[len(w) // 2:])
    wide.train()
    opt = paddle.optimizer.SGD(learning_rate=0.1, parameters=wide.parameters())
    loss = sum(o.mean() for o in training_logits(wide, x))
    loss.backward()
    opt.step()
    w = wide.state_dict()[key].numpy()
    assert not np.allclose(w[: len(w) // 2], w[len(w) // 2:])
    with pytest.raises(ValueError, match="already"):
        paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, str(tmp_path / "w.pdparams"))
        widen(tmp_path / "w.pdparams")


def test_depthwise_convs_that_multiply_channels_become_plain_depthwise_with_the_same_output(tmp_path):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from training.depthwise_repeat import rewrite_depthwise

    rng = np.random.default_rng(0)
    w = lambda *shape: numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), f"w{len(shape)}{shape[0]}")
    inits = [w(12, 1, 3, 3), w(4, 1, 3, 3), w(8, 2, 3, 3)]
    names = [i.name for i in inits]
    nodes = [helper.make_node("Conv", ["x", names[0]], ["a"], group=4, pads=[1, 1, 1, 1], strides=[2, 2]),  # x3
             helper.make_node("Conv", ["x", names[1]], ["b"], group=4, pads=[1, 1, 1, 1]),   # plain depthwise
             helper.make_node("Conv", ["x", names[2]], ["c"], group=2, pads=[1, 1, 1, 1])]   # 2 channels per group
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, None, None, None]) for n in "abc"]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, None, None])],
                              outs, inits)
    path = tmp_path / "dw.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    x = rng.standard_normal((1, 4, 10, 14)).astype(np.float32)
    run = lambda: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    before = run()
    assert rewrite_depthwise(path) == 1
    convs = [n for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    assert [next(a.i for a in n.attribute if a.name == "group") for n in convs] == [12, 4, 2]
    for want, got in zip(before, run()):
        assert want.shape == got.shape and np.abs(want - got).max() < 1e-5


@pytest.mark.parametrize("size", [(64, 64), (96, 128)])
def test_a_mirror_averaged_export_is_the_mean_of_both_passes_in_every_runtime(tmp_path, size):
    import onnx

    from inference import ModelMeta, Segmenter
    from training import export

    weights = _weights_with_a_working_head(tmp_path / "w.pdparams", seed=11)
    plain_dir = export.export(weights, tmp_path / "plain", input_size=64, version="plain")
    both_dir = export.export(weights, tmp_path / "both", input_size=64, version="both", mirror_average=True)
    assert ModelMeta.load(both_dir).mirror_averaged and not ModelMeta.load(plain_dir).mirror_averaged
    for d in (plain_dir, both_dir):       # no conv is left widening channels inside its groups
        graph = onnx.load(str(d / "model.onnx")).graph
        weights = {i.name: i.dims for i in graph.initializer}
        assert all(weights[n.input[1]][0] == next(a.i for a in n.attribute if a.name == "group")
                   for n in graph.node if n.op_type == "Conv" and weights[n.input[1]][1] == 1)
    frame = np.random.default_rng(2).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    mirror = np.ascontiguousarray(frame[:, ::-1])
    plain = Segmenter(plain_dir, backend="onnxruntime", device="cpu", input_size=size)
    a, b = plain.predict_lowres(frame), plain.predict_lowres(mirror)[:, ::-1]
    assert np.abs(a - b).max() > 1e-3                                     # the network alone is not symmetric
    for backend in ("onnxruntime", "paddle"):
        both = Segmenter(both_dir, backend=backend, device="cpu", input_size=size)
        avg = both.predict_lowres(frame)
        assert avg.shape == size and np.abs(avg - (a + b) / 2).max() < 1e-4
        assert np.abs(both.predict_lowres(mirror)[:, ::-1] - avg).max() < 1e-4
