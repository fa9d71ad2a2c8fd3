"""PP-HumanSegV2-Lite's network (PaddleSeg's MobileSeg on MobileNetV3-large) and the loader of its released weights.

The network is paddleseg 2.8's ``MobileSeg`` as PaddleSeg's
``contrib/PP-HumanSeg/configs/portrait_pp_humansegv2_lite.yml`` builds it, cut where its inference
program stops: MobileSeg reads the backbone's first three outputs (blocks 2, 5 and 11), so blocks 12-14
feed nothing and are dropped here, in training too. ``seg_heads.1`` / ``.2`` are training-only
auxiliary heads: the released inference files do not hold them, so they start fresh.

``load_inference_weights`` copies the 345 persistable variables of the released inference program
(``../shared/teachers/pp_humansegv2_lite_256x144``) into the network by variable name, checking every
shape, and fails naming anything left unmatched on either side.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 2))  # before paddle: it forces 1 otherwise

from pathlib import Path

import numpy as np
import paddle
import paddle.nn as nn

NUM_CLASSES = 2
BACKBONE_BLOCKS = 12          # MobileNetV3-large blocks 0-11: the last one MobileSeg reads is 11 (1/16, 112 ch)
AUX_HEADS = ("seg_heads.1.", "seg_heads.2.")   # training only; absent from the inference files


class LoadError(RuntimeError):
    """The inference files and the network disagree: a name or a shape that matches nothing."""


def build_mobileseg() -> nn.Layer:
    """MobileSeg as PP-HumanSegV2-Lite ships it, with the unread backbone blocks cut.

    Built inside a fresh ``unique_name`` scope, so its parameters get the names the released inference
    program gives them (``conv2d_0.w_0`` ...) whatever else this process has built before.
    """
    from paddleseg.models import MobileSeg
    from paddleseg.models.backbones import MobileNetV3_large_x1_0

    with paddle.utils.unique_name.guard():
        backbone = MobileNetV3_large_x1_0()
        model = MobileSeg(num_classes=NUM_CLASSES, backbone=backbone, backbone_indices=[0, 1, 2],
                          cm_bin_sizes=[1, 2, 4], cm_out_ch=128, arm_out_chs=[32, 64, 128],
                          seg_head_inter_chs=[16, 32, 32], use_last_fuse=True)
    backbone.blocks = nn.Sequential(*list(backbone.blocks)[:BACKBONE_BLOCKS])
    backbone.out_index = [i for i in backbone.out_index if i < BACKBONE_BLOCKS]
    backbone.feat_channels = backbone.feat_channels[:len(backbone.out_index)]
    return model


def inference_variables(model_dir: str | Path) -> dict[str, np.ndarray]:
    """Every persistable variable of a Paddle inference program (``model.pdmodel`` + ``model.pdiparams``)."""
    model_dir = Path(model_dir)
    for f in ("model.pdmodel", "model.pdiparams"):
        if not (model_dir / f).is_file():
            raise FileNotFoundError(f"{model_dir / f} not found: give the PP-HumanSegV2-Lite inference folder "
                                    "(../shared/teachers/pp_humansegv2_lite_256x144)")
    from paddle.pir_utils import OldIrGuard

    paddle.enable_static()
    try:
        with OldIrGuard():                # the released files are the old program format, not PIR
            exe = paddle.static.Executor(paddle.CPUPlace())
            scope = paddle.static.Scope()
            with paddle.static.scope_guard(scope):
                program, _, _ = paddle.static.load_inference_model(str(model_dir / "model"), exe)
                names = [v.name for v in program.list_vars()
                         if v.persistable and v.name not in ("feed", "fetch")]
                return {n: np.array(scope.find_var(n).get_tensor()) for n in names}
    finally:
        paddle.disable_static()


def load_inference_weights(model: nn.Layer, model_dir: str | Path) -> int:
    """Copy the inference files' variables into ``model`` by name; returns how many were copied.

    Every variable must meet a parameter or buffer of the same name and shape, and every one of the
    network's (but the fresh auxiliary heads') must be met: otherwise ``LoadError`` lists what is left.
    """
    arrays = inference_variables(model_dir)
    state, kept = {}, {}
    for key, tensor in model.state_dict().items():
        if key.startswith(AUX_HEADS):
            kept[key] = tensor          # training-only heads: they keep their fresh values
            continue
        state[tensor.name] = (key, tensor)
    missing = sorted(f"{k} ({t.name})" for t_name, (k, t) in state.items() if t_name not in arrays)
    unused = sorted(n for n in arrays if n not in state)
    wrong = sorted(f"{n}: file {list(a.shape)}, network {list(state[n][1].shape)}"
                   for n, a in arrays.items() if n in state and list(a.shape) != list(state[n][1].shape))
    if missing or unused or wrong:
        raise LoadError("PP-HumanSegV2-Lite weights do not match the network: "
                        f"{len(missing)} network variables not in the files {missing[:5]}, "
                        f"{len(unused)} file variables not in the network {unused[:5]}, "
                        f"{len(wrong)} shapes differ {wrong[:5]}")
    model.set_state_dict({**kept, **{key: arrays[name] for name, (key, _) in state.items()}})
    return len(arrays)


def person_margin(model: nn.Layer, x):
    """The person-minus-background logit at the main head's own grid (1/4 of the input)."""
    feats = model.backbone(x)
    feats = [feats[i] for i in model.backbone_indices]
    logit = model.seg_heads[0](model.ppseg_head(feats)[0])
    return logit[:, 1:2] - logit[:, 0:1]


class AdaptiveAvgPool(nn.Layer):
    """``nn.AdaptiveAvgPool2D(n)`` for any input size, from a summed-area table: paddle2onnx refuses adaptive
    pooling of a dynamic input (MobileSeg's context module pools its 1/16 grid to 1x1, 2x2 and 4x4 bins).

    Bin ``i`` of ``n`` over a side of ``S`` covers ``floor(i S / n)`` to ``ceil((i + 1) S / n)``, as Paddle's.
    """

    def __init__(self, bins: int):
        super().__init__()
        self.bins = bins

    def forward(self, x):
        if self.bins == 1:
            return x.mean(axis=[2, 3], keepdim=True)
        n = self.bins
        shape = paddle.shape(x)
        table = paddle.cumsum(paddle.cumsum(x, axis=2), axis=3)
        # a zero row above and a zero column left (concatenated: paddle2onnx writes pad's fill value
        # from uninitialised memory, a different number in every export)
        table = paddle.concat([paddle.zeros_like(table[:, :, :1]), table], axis=2)
        table = paddle.concat([paddle.zeros_like(table[:, :, :, :1]), table], axis=3)
        i = paddle.arange(n, dtype="int64")

        def edges(side):
            side = side.astype("int64")
            return (i * side) // n, ((i + 1) * side + n - 1) // n

        (hs, he), (ws, we) = edges(shape[2]), edges(shape[3])

        def at(rows, cols):
            return paddle.index_select(paddle.index_select(table, rows, axis=2), cols, axis=3)

        total = at(he, we) - at(hs, we) - at(he, ws) + at(hs, ws)
        area = (he - hs).astype(x.dtype).unsqueeze(1) * (we - ws).astype(x.dtype).unsqueeze(0)
        return total / area


def exportable(model: nn.Layer) -> nn.Layer:
    """``model`` with its context module's adaptive pools made exportable (``AdaptiveAvgPool``); same numbers."""
    for stage in model.ppseg_head.cm.stages:
        pool = stage[0]
        if isinstance(pool, nn.AdaptiveAvgPool2D):
            size = pool._output_size
            stage._sub_layers[next(iter(stage._sub_layers))] = AdaptiveAvgPool(int(size if isinstance(size, int)
                                                                                   else size[0]))
    return model
