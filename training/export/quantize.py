"""The int8 version of an exported model: ONNX Runtime static quantisation (QDQ), checked
against fp32 on real photos before the app may use it.

Called by ``python -m training.export ... --calibration-list FILE_LIST``. Activations are
calibrated on ``images`` photos of the list, seen exactly as the app's ``Segmenter`` feeds
them; a separate set of photos then measures how well the int8 masks agree with fp32
(IoU of the two masks at the shipped size). Below ``min_agreement`` the int8 file is not
listed in ``meta.json``, so the app keeps running fp32.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from bgswap.inference.model_meta import INT8_FILE, ONNX_FILE, ModelMeta

log = logging.getLogger("training.export.quantize")



def nodes_after_margin(onnx_path: str | Path) -> list[str]:
    """The nodes after the person-minus-background margin (the graph's last ``Sub``): the edge head
    and the output's upsampling and sigmoid, kept in fp32.

    Quantised, the head's small convs (4-16 channels at 1/4 and 1/2 resolution, with resizes and
    concats between) make the int8 model slower than with the head in fp32, which is as accurate.
    """
    import onnx

    nodes = onnx.load(str(onnx_path)).graph.node
    subs = [i for i, n in enumerate(nodes) if n.op_type == "Sub"]
    return [n.name for n in nodes[subs[-1] + 1:]] if subs else []


def quantize_int8(model_dir: str | Path, calibration_list: str | Path, images: int = 64, check_images: int = 32,
                  min_agreement: float = 0.97, seed: int = 0) -> dict:
    """Write ``model.int8.onnx`` beside ``model.onnx`` and list it in ``meta.json`` if it agrees with fp32.

    Returns ``{"mask_agreement", "max_prob_diff", "calibration_images", "check_images", "shipped"}``.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from bgswap.inference import Segmenter
    from training.data import load_pair, read_file_list
    from training.metrics import measure

    model_dir = Path(model_dir)
    pairs = read_file_list(calibration_list)
    if len(pairs) < 2:
        raise ValueError(f"calibration list {calibration_list} has {len(pairs)} photos: give at least 2")
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_cal = min(images, len(pairs) - 1)
    cal_pairs = [pairs[i] for i in order[:n_cal]]
    check_pairs = [pairs[i] for i in order[n_cal:n_cal + check_images]]

    fp32 = Segmenter(model_dir, backend="onnxruntime", compute="cpu", precision="fp32")
    input_name = fp32.backend.input_name
    batches = [{input_name: fp32.preprocess([load_pair(ip, mp)[0]])} for ip, mp in cal_pairs]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(batches)

        def get_next(self):
            return next(self._it, None)

    meta = ModelMeta.load(model_dir)
    meta.int8_onnx = ""              # not usable while it is being replaced
    meta.save(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(model_dir / ONNX_FILE), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(model_dir / INT8_FILE), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=nodes_after_margin(model_dir / ONNX_FILE))
    meta.int8_onnx = INT8_FILE
    meta.save(model_dir)
    int8 = Segmenter(model_dir, backend="onnxruntime", compute="cpu", precision="int8")
    agreement, max_diff = [], 0.0
    for ip, mp in check_pairs:
        img = load_pair(ip, mp)[0]
        a, b = fp32.predict_lowres(img), int8.predict_lowres(img)
        agreement.append(measure(b > 0.5, a > 0.5).person_iou)   # the evaluate command's IoU
        max_diff = max(max_diff, float(np.abs(a - b).max()))
    result = {"mask_agreement": float(np.mean(agreement)) if agreement else 0.0, "max_prob_diff": max_diff,
              "calibration_images": n_cal, "check_images": len(check_pairs),
              "calibration_list": Path(calibration_list).name}
    result["shipped"] = result["mask_agreement"] >= min_agreement
    if not result["shipped"]:
        log.warning("int8 masks agree with fp32 only %.3f (< %.3f): the app will keep using fp32",
                    result["mask_agreement"], min_agreement)
        meta.int8_onnx = ""
    meta.extra["int8"] = result
    meta.save(model_dir)
    log.info("int8 model: mask agreement with fp32 %.4f on %d photos, max |prob diff| %.3f",
             result["mask_agreement"], len(check_pairs), max_diff)
    return result
