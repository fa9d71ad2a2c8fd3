"""The inference API other code relies on: shapes, ranges, options, backends, errors."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from inference import ModelError, ModelMeta, Segmenter
from inference.backends import BackendOptions, create_backend


def test_alpha_shape_range_and_dtype(segmenter, portrait_frame):
    for h, w in [(480, 640), (720, 1280), (300, 200)]:
        frame = np.ascontiguousarray(np.resize(portrait_frame, (h, w, 3)))
        alpha = segmenter(frame)
        assert alpha.shape == (h, w) and alpha.dtype == np.float32
        assert 0.0 <= alpha.min() and alpha.max() <= 1.0


def test_lowres_output_follows_metadata_and_input_size(model_dir, portrait_frame):
    meta = ModelMeta.load(model_dir)
    seg = Segmenter(model_dir, backend="onnxruntime", device="cpu")
    assert seg.predict_lowres(portrait_frame).shape == tuple(meta.input_size)
    small = Segmenter(model_dir, backend="onnxruntime", device="cpu", input_size=160)
    assert small.predict_lowres(portrait_frame).shape == (160, 160)
    with pytest.raises(ValueError, match="multiples of 32"):
        Segmenter(model_dir, input_size=100)


def test_rejects_non_bgr_input(segmenter):
    with pytest.raises(ValueError, match="HxWx3"):
        segmenter(np.zeros((10, 10), np.uint8))


def test_gpu_request_falls_back_to_cpu(model_dir, portrait_frame):
    seg = Segmenter(model_dir, backend="onnxruntime", device="gpu")
    assert seg.backend.device == "cpu"
    assert seg(portrait_frame).shape == portrait_frame.shape[:2]


def test_auto_picks_onnxruntime_on_a_cpu_machine(model_dir):
    backend = create_backend(model_dir, BackendOptions())
    assert backend.name == "onnxruntime" and backend.device == "cpu"


def test_bad_backend_names_are_rejected(model_dir):
    with pytest.raises(ValueError, match="backend must be one of"):
        create_backend(model_dir, BackendOptions(backend="tensorflow"))
    with pytest.raises(ValueError, match="device must be one of"):
        create_backend(model_dir, BackendOptions(device="tpu"))


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
    onnx = Segmenter(model_dir, backend="onnxruntime", device="cpu", precision="fp32")
    paddle = Segmenter(model_dir, backend="paddle", device="cpu")
    assert paddle.backend.name == "paddle"
    rng = np.random.default_rng(1)
    for frame in (portrait_frame, rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)):
        diff = np.abs(onnx.predict_lowres(frame) - paddle.predict_lowres(frame)).max()
        assert diff < 1e-3
