"""PP-HumanSegV2-Lite's network: its released inference files load into it by name and give the same output."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml

from .conftest import ROOT, shared_val_pairs

pytestmark = pytest.mark.slow        # needs paddle and the teachers' folder
TEACHER = ROOT.parent / "shared" / "teachers" / "pp_humansegv2_lite_256x144"


@pytest.fixture(scope="module")
def loaded():
    pytest.importorskip("paddle")
    if not (TEACHER / "model.pdmodel").is_file():
        pytest.skip("../shared/teachers/pp_humansegv2_lite_256x144 is not present")
    from training.mobileseg import build_mobileseg, load_inference_weights

    model = build_mobileseg()
    n = load_inference_weights(model, TEACHER)
    model.eval()
    return model, n


def _inference_files_output(x: np.ndarray) -> np.ndarray:
    from paddle import inference

    cfg = inference.Config(str(TEACHER / "model.pdmodel"), str(TEACHER / "model.pdiparams"))
    cfg.disable_gpu()
    cfg.disable_glog_info()
    predictor = inference.create_predictor(cfg)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(x.shape)
    handle.copy_from_cpu(x)
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def test_loaded_network_equals_the_inference_files_on_20_photos(loaded):
    import paddle

    from training.data import to_chw_rgb

    model, n = loaded
    assert n == 345                     # every persistable variable of the released program
    photos = [cv2.imread(str(img)) for img, _ in shared_val_pairs("eg_", 10) + shared_val_pairs("ccp_", 10)]
    assert len(photos) == 20
    x = to_chw_rgb(np.stack([cv2.resize(p, (256, 144), interpolation=cv2.INTER_AREA) for p in photos]))
    want = _inference_files_output(x)
    with paddle.no_grad():
        got = paddle.nn.functional.softmax(model(paddle.to_tensor(x))[0], axis=1).numpy()
    assert got.shape == want.shape == (20, 2, 144, 256)
    assert np.abs(got - want).max() < 1e-5
    assert (want[:, 1] > 0.5).mean() > 0.1          # the photos' people are found, not an empty output


def test_unmatched_variables_fail_loudly(loaded, tmp_path):
    import paddle

    from training.mobileseg import LoadError, build_mobileseg, load_inference_weights

    model = build_mobileseg()
    model.backbone.blocks = paddle.nn.Sequential(*list(model.backbone.blocks)[:11])   # one block short
    with pytest.raises(LoadError, match="file variables not in the network"):
        load_inference_weights(model, TEACHER)
    with pytest.raises(FileNotFoundError, match="PP-HumanSegV2-Lite inference folder"):
        load_inference_weights(build_mobileseg(), tmp_path)


def test_names_do_not_depend_on_what_was_built_before(loaded):
    from training.mobileseg import build_mobileseg, load_inference_weights
    from training.model import build_model

    build_model()                      # other layers first: unique names move on in this process
    assert load_inference_weights(build_mobileseg(), TEACHER) == 345


@pytest.mark.parametrize("bins", [1, 2, 4])
def test_exportable_pool_equals_adaptive_pooling(bins):
    paddle = pytest.importorskip("paddle")
    from training.mobileseg import AdaptiveAvgPool

    for hw in ((9, 16), (12, 16), (16, 9), (7, 11)):        # 1/16 grids of 144x256, 192x256, ... and odd ones
        x = paddle.randn([2, 5, *hw]) * 3
        want = paddle.nn.AdaptiveAvgPool2D(bins)(x).numpy()
        got = AdaptiveAvgPool(bins)(x).numpy()
        assert got.shape == want.shape == (2, 5, bins, bins)
        assert np.abs(got - want).max() < 1e-5


def test_export_runs_like_the_network_at_every_frame_shape(loaded, tmp_path):
    import paddle

    from bgswap.inference import Segmenter
    from bgswap.inference.model_meta import ModelMeta
    from training.checkpoints import atomic_save
    from training.export import export, parity

    model, _ = loaded
    atomic_save(model.state_dict(), tmp_path / "w.pdparams")
    out = export(tmp_path / "w.pdparams", tmp_path / "m", frame_aspect=True, shape_rule=(0.5625, 16))
    meta = ModelMeta.load(out)
    assert (meta.network, meta.short_side_floor, meta.short_side_step) == ("mobileseg", 0.5625, 16)
    assert "PP-HumanSegV2-Lite" in meta.derives_from and "PP-HumanSegV2-Lite" in (out / "NOTICE").read_text()
    assert "Apache License" in (out / "LICENSE").read_text()
    assert parity(out) < 1e-4                       # Paddle Inference and ONNX Runtime, three frame shapes
    seg = Segmenter(out, backend="onnxruntime", compute="cpu", precision="fp32")
    img = cv2.imread(str(ROOT / "assets" / "demo" / "astronaut.jpg"))
    frame = cv2.resize(img, (1280, 720))
    assert seg.input_shape(frame.shape[:2]) == (144, 256)      # 16:9 fed at its own shape
    from training.data import to_chw_rgb
    from training.model import PersonProbability

    x = to_chw_rgb(cv2.resize(frame, (256, 144), interpolation=cv2.INTER_AREA)[None])
    with paddle.no_grad():
        want = PersonProbability(model)(paddle.to_tensor(x)).numpy()[0, 0]
    assert np.abs(seg.predict_lowres(frame) - want).max() < 1e-4


def test_training_starts_from_the_inference_files_and_resumes(loaded, tmp_path):
    """A MobileSeg run starts from the released weights (kept as init.pdparams for blending), trains on
    frame-shaped inputs of several sizes, stops, and resumes from its checkpoint (the first save after
    a resume once failed)."""
    import paddle

    from training.config import load_config

    from .training_data import CONFIGS, make_dataset

    model, _ = loaded
    root = make_dataset(tmp_path / "d")
    cfg = load_config(CONFIGS / "portrait_mobileseg_v5.yml")
    cfg.pop("scenes")
    cfg.update(data_root=str(root), cache_dir=str(tmp_path / "cache"), run_dir=str(tmp_path / "run"),
               init_inference=str(TEACHER), batch_size=2, stages=[[2, 96]], sizes=[64, 96], val_every=100,
               save_every=1, log_every=1, cache_long_side=96)
    config = tmp_path / "run.yml"        # runs as a run is made: a process of its own (Paddle names slots per process)
    config.write_text(yaml.safe_dump({k: v for k, v in cfg.items() if k != "_config_path"}))
    r = subprocess.run([sys.executable, "-m", "training.train", "--config", str(config)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    run = tmp_path / "run"
    init = paddle.load(str(run / "init.pdparams"))
    from training.mobileseg import AUX_HEADS

    for key, value in model.state_dict().items():       # the released weights, as loaded (aux heads start fresh)
        if not key.startswith(AUX_HEADS):
            np.testing.assert_array_equal(init[key].numpy(), value.numpy())
    assert paddle.load(str(run / "last.pdckpt"))["iteration"] == 2
    cfg["stages"] = [[4, 96]]
    config.write_text(yaml.safe_dump({k: v for k, v in cfg.items() if k != "_config_path"}))
    r = subprocess.run([sys.executable, "-m", "training.train", "--config", str(config)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    log_text = (run / "train.log").read_text()
    assert "resumed from" in log_text and "inputs shaped like frames" in log_text
    assert paddle.load(str(run / "last.pdckpt"))["iteration"] == 4
