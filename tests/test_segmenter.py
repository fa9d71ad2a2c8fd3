"""The inference API other code relies on: shapes, ranges, options, backends, errors."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from bgswap.inference import ModelError, ModelMeta, Segmenter
from bgswap.inference.backends import BackendOptions, create_backend
from bgswap.inference.segmenter import shrink_to


def test_alpha_shape_range_and_dtype(segmenter, portrait_frame):
    for h, w in [(480, 640), (720, 1280), (300, 200)]:
        frame = np.ascontiguousarray(np.resize(portrait_frame, (h, w, 3)))
        alpha = segmenter(frame)
        assert alpha.shape == (h, w) and alpha.dtype == np.float32
        assert 0.0 <= alpha.min() and alpha.max() <= 1.0


def test_lowres_output_follows_metadata_and_input_size(model_dir, portrait_frame):
    meta = ModelMeta.load(model_dir)
    seg = Segmenter(model_dir, backend="onnxruntime", compute="cpu")
    assert seg.predict_lowres(portrait_frame).shape == meta.input_shape(portrait_frame.shape[:2])
    small = Segmenter(model_dir, backend="onnxruntime", compute="cpu", input_size=160)
    assert small.predict_lowres(portrait_frame).shape == meta.input_shape(portrait_frame.shape[:2], (160, 160))
    assert max(small.predict_lowres(portrait_frame).shape) == 160
    with pytest.raises(ValueError, match="multiple of 32 between 64 and 1024"):
        Segmenter(model_dir, input_size=100)
    with pytest.raises(ValueError, match="multiple of 32 between 64 and 1024"):
        Segmenter(model_dir, input_size=2048)


def test_input_shape_follows_the_frame_for_models_trained_so():
    from bgswap.inference.model_meta import input_shape_for

    assert input_shape_for((480, 640), 256) == (192, 256)           # 4:3 webcam
    assert input_shape_for((720, 1280), 256) == (192, 256)          # 16:9: never under 3/4 of the long side
    assert input_shape_for((800, 600), 256) == (256, 192)           # a portrait photo stands up
    assert input_shape_for((512, 512), 192) == (192, 192)
    assert input_shape_for((825, 550), 256) == (256, 192)
    assert input_shape_for((720, 1280), 192) == (160, 192)
    assert ModelMeta(frame_aspect=False).input_shape((720, 1280)) == (256, 256)
    assert ModelMeta(frame_aspect=True).input_shape((720, 1280)) == (192, 256)
    assert ModelMeta(frame_aspect=True).input_shape((600, 450), (192, 192)) == (192, 160)


@pytest.mark.parametrize("floor, step, wide_hw", [(0.75, 32, (192, 256)),     # BiSeNetV2's rule
                                                  (0.5625, 16, (144, 256))])   # MobileSeg's: 16:9 as it is
def test_a_frame_aspect_model_is_fed_frames_shaped_like_themselves(model_dir, tmp_path, floor, step, wide_hw):
    meta = json.loads((model_dir / "meta.json").read_text())
    meta.update(frame_aspect=True, int8_onnx="", short_side_floor=floor, short_side_step=step, input_size=[256, 256])
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    shutil.copy(model_dir / "model.onnx", tmp_path / "model.onnx")
    seg = Segmenter(tmp_path, backend="onnxruntime", precision="fp32")
    wide, tall = np.full((720, 1280, 3), 90, np.uint8), np.full((600, 450, 3), 90, np.uint8)
    assert seg.predict_lowres(wide).shape == wide_hw and seg(tall).shape == (600, 450)
    assert seg.preprocess([tall]).shape == (1, 3, 256, 192)
    mixed = seg.predict_batch([wide, tall, wide])                  # one call per shape, answers in order
    assert [p.shape for p in mixed] == [wide_hw, (256, 192), wide_hw]
    np.testing.assert_allclose(mixed[0], seg.predict_lowres(wide), atol=1e-5)


@pytest.mark.parametrize("backend", ["onnxruntime", "paddle"])
def test_the_shipped_model_runs_one_pass_and_two_are_mirror_symmetric(model_dir, portrait_frame, backend):
    """One pass per call by default; ``passes=2`` averages each frame with its mirror image."""
    assert not ModelMeta.load(model_dir).mirror_averaged
    frame = np.ascontiguousarray(portrait_frame[:, 40:])          # off-centre
    one = Segmenter(model_dir, backend=backend, compute="cpu", precision="fp32")
    a, b = one.predict_lowres(frame), one.predict_lowres(np.ascontiguousarray(frame[:, ::-1]))[:, ::-1]
    assert one.passes == 1 and np.abs(a - b).max() > 1e-3           # a single pass is not symmetric
    two = Segmenter(model_dir, backend=backend, compute="cpu", precision="fp32", passes=2)
    a, b = two.predict_lowres(frame), two.predict_lowres(np.ascontiguousarray(frame[:, ::-1]))[:, ::-1]
    assert a.std() > 0.1 and np.abs(a - b).max() < 1e-4


@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_preprocess_is_the_metadata_normalisation_in_nchw(model_dir, portrait_frame, tmp_path, order):
    meta = json.loads((model_dir / "meta.json").read_text())
    meta.update(color_order=order, mean=[0.2, 0.5, 0.7], std=[0.3, 0.25, 0.6])
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    shutil.copy(model_dir / "model.onnx", tmp_path / "model.onnx")
    seg = Segmenter(tmp_path, backend="onnxruntime", precision="fp32")
    x = seg.preprocess([portrait_frame])
    h, w = seg.input_shape(portrait_frame.shape[:2])
    small = shrink_to(portrait_frame, w, h).astype(np.float64) / 255.0     # the resize is tested on its own
    if order == "RGB":
        small = small[..., ::-1]
    expected = ((small - meta["mean"]) / meta["std"]).transpose(2, 0, 1)[None]
    assert x.shape == (1, 3, h, w) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(x, expected, atol=1e-5)


def test_rejects_non_bgr_input(segmenter):
    with pytest.raises(ValueError, match="HxWx3"):
        segmenter(np.zeros((10, 10), np.uint8))


def test_gpu_request_falls_back_to_cpu(model_dir, portrait_frame):
    seg = Segmenter(model_dir, backend="onnxruntime", compute="gpu")
    assert seg.backend.compute == "cpu"
    assert seg(portrait_frame).shape == portrait_frame.shape[:2]


def test_auto_picks_onnxruntime_on_a_cpu_machine(model_dir):
    backend = create_backend(model_dir, BackendOptions())
    assert backend.name == "onnxruntime" and backend.compute == "cpu"


def test_bad_backend_names_are_rejected(model_dir):
    with pytest.raises(ValueError, match="backend must be one of"):
        create_backend(model_dir, BackendOptions(backend="tensorflow"))
    with pytest.raises(ValueError, match="compute must be one of"):
        create_backend(model_dir, BackendOptions(compute="tpu"))


def test_missing_model_dir_names_the_file(tmp_path):
    with pytest.raises(ModelError, match="meta.json"):
        Segmenter(tmp_path / "nowhere")


def test_corrupt_onnx_is_a_clear_error(model_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(model_dir / "meta.json", bad / "meta.json")
    (bad / "model.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="model.onnx.*corrupt"):
        Segmenter(bad, backend="onnxruntime")


def test_missing_onnx_file_is_named(model_dir, tmp_path):
    shutil.copy(model_dir / "meta.json", tmp_path / "meta.json")
    with pytest.raises(ModelError, match="model.onnx"):
        Segmenter(tmp_path, backend="onnxruntime")


def test_corrupt_metadata_is_a_clear_error(tmp_path):
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(ModelError, match="corrupt"):
        ModelMeta.load(tmp_path)


def test_paddle_and_onnxruntime_agree(model_dir, portrait_frame):
    pytest.importorskip("paddle")
    onnx = Segmenter(model_dir, backend="onnxruntime", compute="cpu", precision="fp32")
    paddle = Segmenter(model_dir, backend="paddle", compute="cpu")
    assert paddle.backend.name == "paddle"
    rng = np.random.default_rng(1)
    for frame in (portrait_frame, rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)):
        diff = np.abs(onnx.predict_lowres(frame) - paddle.predict_lowres(frame)).max()
        assert diff < 1e-3


@pytest.mark.parametrize("frame_hw, out_hw", [((720, 1280), (192, 256)), ((1080, 1920), (192, 256)),
                                              ((480, 640), (256, 256)), ((768, 1366), (192, 256))])
def test_shrink_to_is_a_pixel_average_resize(portrait_frame, frame_hw, out_hw):
    """The two-step shrink (a whole factor dividing both sides, then the rest) gives the picture one
    INTER_AREA resize gives, to within rounding."""
    frame = cv2.resize(portrait_frame, frame_hw[::-1], interpolation=cv2.INTER_LINEAR)
    got = shrink_to(frame, out_hw[1], out_hw[0]).astype(np.float32)
    ref = cv2.resize(frame, out_hw[::-1], interpolation=cv2.INTER_AREA).astype(np.float32)
    assert got.shape == ref.shape and np.abs(got - ref).mean() < 1.0 and np.abs(got - ref).max() <= 40
