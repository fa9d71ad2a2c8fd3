"""PP-HumanSegV2-Lite's network: its released inference files load into it by name and give the same output."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

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
