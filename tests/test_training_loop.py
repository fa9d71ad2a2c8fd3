"""The training command: configs, schedule, losses, resume, export and evaluation end to end (needs paddle)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from training.config import load_config

from .training_data import CONFIGS, make_dataset

pytestmark = pytest.mark.slow        # real processes or training: 'pytest -m "not slow"' skips them


def test_train_resume_export_evaluate(tmp_path):
    pytest.importorskip("paddle")
    from training import evaluate, export, train

    root = make_dataset(tmp_path / "d")
    cfg = load_config(CONFIGS / "portrait_bisenetv2.yml")
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
    train.train(cfg)              # resumes at 5 with the base augmentation and runs to 7
    ck7 = paddle.load(str(run / "last.pdckpt"))
    assert ck7["iteration"] == 7
    assert any(not np.array_equal(ck["model"][k].numpy(), ck7["model"][k].numpy()) for k in ck["model"])
    log_text = (run / "train.log").read_text()
    assert "resumed from" in log_text and log_text.count("augmentation now") == 1

    out = export.export(run / "best.pdparams", tmp_path / "model", input_size=96, version="test")
    assert {p.name for p in out.iterdir()} >= {"model.json", "model.pdiparams", "model.onnx", "meta.json"}
    assert export.parity(out) < 1e-4
    r = evaluate.evaluate(root / "val.txt", out, backend="onnxruntime")
    assert r["images"] == 3 and r["input_size"] == [96, 96]
    assert 0 <= r["person_iou"] <= 1 and 0 <= r["boundary_f"] <= 1 and r["model_ms_mean"] > 0
    assert r["precision"] == "fp32"                    # exported without a calibration list

    from bgswap.inference import Segmenter
    from bgswap.inference.model_meta import ModelMeta
    from bgswap.inference.model_meta import INT8_FILE
    from training.export.quantize import quantize_int8

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
    assert Segmenter(out, backend="onnxruntime", compute="cpu").backend.precision == "fp32"
    export.export(run / "best.pdparams", out, input_size=96, version="test2")   # no stale int8 file survives
    assert not (out / INT8_FILE).exists() and ModelMeta.load(out).int8_onnx == ""


def test_lr_schedule_and_stages():
    from training.config import lr_at, stage_size

    oc = {"lr": 0.1, "warmup_iters": 10, "poly_power": 0.9}
    lrs = [lr_at(i, 100, oc) for i in range(100)]
    assert lrs[0] < lrs[9] < lrs[10] and lrs[10] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] < 0.01
    assert [stage_size(i, [[5, 64], [5, 96]]) for i in (0, 4, 5, 9, 12)] == [64, 64, 96, 96, 96]


def test_stage_augment_profiles():
    from training.config import check_stages, stage_augment

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
    from training.config import check_stages, stage_augment, stage_loss

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
    from training.metrics import boundary_f

    gt = np.zeros((50, 50), bool)
    gt[10:40, 10:40] = True
    assert boundary_f(gt, gt) == 1.0
    shifted = np.roll(gt, 2, axis=1)
    far = np.roll(gt, 9, axis=1)
    assert boundary_f(shifted, gt) > 0.8 > boundary_f(far, gt)


def test_configs_inherit_their_base(tmp_path):
    from training.config import load_config

    v4 = load_config(CONFIGS / "portrait_bisenetv4.yml")
    base = load_config(CONFIGS / "_base_.yml")
    assert v4["data_root"] == base["data_root"] and v4["loss"] == base["loss"]
    assert v4["optimizer"]["lr"] == 0.003 and v4["optimizer"]["momentum"] == base["optimizer"]["momentum"]
    assert v4["augment"]["rotate_p"] == 0.3 and "jpeg_p" not in v4["augment"] and "augment" not in base
    from training.config import stage_augment
    from training.data import AugmentConfig

    assert AugmentConfig(**stage_augment(0, v4)) == AugmentConfig(rotate_p=0.3, recompose_p=0.2)  # the rest: defaults
    (tmp_path / "a.yml").write_text("_base_: b.yml\nx: 1\n")
    (tmp_path / "b.yml").write_text("_base_: a.yml\n")
    with pytest.raises(ValueError, match="inherits from itself"):
        load_config(tmp_path / "a.yml")


def test_blend_averages_float_weights_with_their_shares(tmp_path):
    paddle = pytest.importorskip("paddle")
    from training.blend import blend_weights, main

    a = {"w": np.full((2, 3), 4.0, np.float32), "steps": np.array([7], np.int64)}
    b = {"w": np.zeros((2, 3), np.float32), "steps": np.array([9], np.int64)}
    paddle.save(a, str(tmp_path / "a.pdparams"))
    paddle.save({"model": b, "iteration": 3}, str(tmp_path / "b.pdckpt"))      # a checkpoint holds its weights
    out = blend_weights([(tmp_path / "a.pdparams", 3), (tmp_path / "b.pdckpt", 1)])
    np.testing.assert_allclose(out["w"], 3.0)
    assert out["w"].dtype == np.float32 and out["steps"].tolist() == [7]     # counters come from the first
    with pytest.raises(FileNotFoundError, match="missing.pdparams"):
        blend_weights([(tmp_path / "missing.pdparams", 1)])
    paddle.save({"other": b["w"]}, str(tmp_path / "c.pdparams"))
    paddle.save({"w": np.zeros((1, 3), np.float32), "steps": b["steps"]}, str(tmp_path / "d.pdparams"))
    for other in ("c.pdparams", "d.pdparams"):          # other names; same names, other shapes
        with pytest.raises(ValueError, match="not the same network"):
            blend_weights([(tmp_path / "a.pdparams", 1), (tmp_path / other, 1)])

    main([f"{tmp_path / 'a.pdparams'}:0.25", f"{tmp_path / 'b.pdckpt'}:0.75", "--out", str(tmp_path / "m.pdparams")])
    np.testing.assert_allclose(np.asarray(paddle.load(str(tmp_path / "m.pdparams"))["w"]), 1.0)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "a.pdparams"), "--out", str(tmp_path / "x.pdparams")])     # no share
