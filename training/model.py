"""BiSeNetV2 for two classes (background, person), tuned for CPU training, and its export head."""
from __future__ import annotations

from pathlib import Path

import paddle
import paddle.nn as nn
from paddleseg.models import BiSeNetV2

NUM_CLASSES = 2


def drop_biases_before_batchnorm(model: nn.Layer) -> int:
    """Remove conv biases that a BatchNorm right after cancels out; returns how many.

    PaddleSeg's ConvBN/ConvBNReLU give every conv a bias; it changes nothing the
    network can compute but costs ~18% of a CPU training step. Exact when
    training from scratch.
    """
    n = 0
    for layer in model.sublayers():
        conv = getattr(layer, "_conv", None)
        if conv is not None and hasattr(layer, "_batch_norm") and conv.bias is not None:
            conv.bias = None
            n += 1
    return n


def build_model(edge_head: bool = False, half_res: bool = True, lambd: float = 0.25) -> nn.Layer:
    """BiSeNetV2 for two classes, semantic-branch width ``lambd`` (PaddleSeg's; the shipped networks
    are 0.25); with ``edge_head``, plus an ``EdgeHead(half_res)`` as ``model.edge_head``."""
    model = BiSeNetV2(num_classes=NUM_CLASSES, lambd=lambd)
    drop_biases_before_batchnorm(model)
    if edge_head:
        model.edge_head = EdgeHead(half_res=half_res)
    return model


NETWORKS = ("bisenetv2", "mobileseg")


def is_mobileseg(model: nn.Layer) -> bool:
    """Whether ``model`` is PP-HumanSegV2-Lite's MobileSeg (``training.mobileseg``) rather than BiSeNetV2."""
    return hasattr(model, "ppseg_head")


def network_of_state(state: dict) -> str:
    """Which of ``NETWORKS`` a state dict belongs to."""
    return "mobileseg" if any(k.startswith("ppseg_head.") for k in state) else "bisenetv2"


def build_network(cfg: dict) -> nn.Layer:
    """The network a training config names (``network``: one of ``NETWORKS``, default BiSeNetV2)."""
    name = cfg.get("network", "bisenetv2")
    if name == "mobileseg":
        from training.mobileseg import build_mobileseg

        return build_mobileseg()
    if name != "bisenetv2":
        raise ValueError(f"unknown network {name!r} in the config: use one of {', '.join(NETWORKS)}")
    return build_model(edge_head=bool(cfg.get("edge_head", False)), lambd=float(cfg.get("lambd", 0.25)))


def load_weights(path: str | Path) -> dict:
    """The network's state dict from a ``.pdparams`` file or from a training checkpoint (``.pdckpt``)."""
    state = paddle.load(str(path))
    return state["model"] if isinstance(state.get("model"), dict) else state


def edge_head_in(state: dict) -> tuple[bool, bool]:
    """Whether a state dict holds an edge head, and whether that head has its 1/2-resolution stage."""
    return (any(k.startswith("edge_head.") for k in state),
            any(k.startswith("edge_head.half_") for k in state))


def lambd_of(state: dict) -> float:
    """The semantic-branch width a state dict was trained with (its stem makes 64 x lambd channels)."""
    return state["sb.stem.conv._conv.weight"].shape[0] / 64


DETAIL_QUARTER = 5   # the detail branch's first five ConvBNReLUs end at 1/4 resolution (64 channels)


class EdgeHead(nn.Layer):
    """Refines BiSeNetV2's person margin from its 1/8 grid to a 1/4 grid, then (``half_res``) a 1/2 grid.

    BiSeNetV2 predicts at 1/8 of the input (32 x 32 at 256): on val photos that grid alone
    caps person IoU at ~0.978 even with perfect logits, 0.989 at 1/4 and 0.995 at 1/2. The
    1/4 stage sees the margin upsampled to 1/4, the detail branch's 1/4 features and the image
    at 1/4; the 1/2 stage sees that result upsampled, the image at 1/2 and four channels of the
    1/4 stage's features. Each stage adds a correction through a last conv that starts at zero,
    so a new stage leaves the network's output as it was.
    """

    def __init__(self, detail_channels: int = 64, mid: int = 16, half_res: bool = True, half_mid: int = 8):
        super().__init__()
        from paddleseg.models import layers

        self.reduce = layers.ConvBNReLU(detail_channels + 4, mid, 1, bias_attr=False)
        self.conv1 = layers.ConvBNReLU(mid, mid, 3, bias_attr=False)
        self.conv2 = layers.ConvBNReLU(mid, mid, 3, bias_attr=False)
        self.out = nn.Conv2D(mid, 1, 1, weight_attr=nn.initializer.Constant(0.0),
                             bias_attr=nn.initializer.Constant(0.0))
        self.half_res = half_res
        if half_res:
            self.half_hint = layers.ConvBNReLU(mid, 4, 1, bias_attr=False)
            self.half_conv1 = layers.ConvBNReLU(8, half_mid, 3, bias_attr=False)
            self.half_conv2 = layers.ConvBNReLU(half_mid, half_mid, 3, bias_attr=False)
            self.half_out = nn.Conv2D(half_mid, 1, 1, weight_attr=nn.initializer.Constant(0.0),
                                      bias_attr=nn.initializer.Constant(0.0))

    def forward(self, margin8, detail4, x):
        up = nn.functional.interpolate
        size = paddle.shape(detail4)[2:]
        m4 = up(margin8, size, mode="bilinear", align_corners=False)
        x4 = up(x, size, mode="bilinear", align_corners=False)
        h4 = self.conv2(self.conv1(self.reduce(paddle.concat([m4, detail4, x4], axis=1))))
        m4 = m4 + self.out(h4)
        if not self.half_res:
            return m4
        size = size * 2
        m2 = up(m4, size, mode="bilinear", align_corners=False)
        x2 = up(x, size, mode="bilinear", align_corners=False)
        hint = up(self.half_hint(h4), size, mode="bilinear", align_corners=False)
        return m2 + self.half_out(self.half_conv2(self.half_conv1(paddle.concat([m2, x2, hint], axis=1))))


def backbone_parts(model: nn.Layer, x) -> tuple:
    """BiSeNetV2's eval path, opened up: the detail branch at 1/4 (what an edge head sees), the
    semantic branch's outputs (four auxiliary features, then the last) and the main head's
    person-minus-background logit at 1/8."""
    m = model
    detail4 = m.db.convs[:DETAIL_QUARTER](x)
    semantic = m.sb(x)
    logit = m.head(m.bga(m.db.convs[DETAIL_QUARTER:](detail4), semantic[-1]))
    return detail4, semantic, logit[:, 1:2] - logit[:, 0:1]


def person_margin(model: nn.Layer, x):
    """The person-minus-background logit at the network's own grid (BiSeNetV2: 1/8, or the edge head's
    1/4 or 1/2; MobileSeg: 1/4)."""
    if is_mobileseg(model):
        from training.mobileseg import person_margin as mobileseg_margin

        return mobileseg_margin(model, x)
    detail4, _, margin = backbone_parts(model, x)
    edge_head = getattr(model, "edge_head", None)
    return margin if edge_head is None else edge_head(margin, detail4, x)


def training_logits(model: nn.Layer, x) -> list:
    """Two-class logits at the input size for the training loss: the main head's, then the four
    auxiliary heads' (``BiSeNetV2.forward`` in training mode). With an edge head the main logits
    are ``[0, refined margin]``, whose softmax is the exported person probability."""
    m = model
    if is_mobileseg(m) or getattr(m, "edge_head", None) is None:
        return m(x)
    detail4, (feat1, feat2, feat3, feat4, _), margin = backbone_parts(m, x)
    margin = m.edge_head(margin, detail4, x)
    outs = [paddle.concat([paddle.zeros_like(margin), margin], axis=1),
            m.aux_head1(feat1), m.aux_head2(feat2), m.aux_head3(feat3), m.aux_head4(feat4)]
    size = paddle.shape(x)[2:]
    return [nn.functional.interpolate(o, size, mode="bilinear", align_corners=m.align_corners) for o in outs]


class PersonProbability(nn.Layer):
    """Export wrapper: normalised NCHW RGB in, person probability N x 1 x H x W out.

    The same numbers as ``softmax(model(x)[0])[:, 1]``, computed the cheaper way: with two
    classes the softmax is ``sigmoid(person logit - background logit)``, and the difference
    is taken at the head's 1/8 resolution, before the bilinear upsampling (both linear, so
    they commute), which then resizes one channel instead of two. In ONNX Runtime the channel
    softmax over the full-size logits alone took ~10 % of the fp32 model's time.
    """

    def __init__(self, model: nn.Layer):
        super().__init__()
        self.model = model

    def forward(self, x):
        margin = person_margin(self.model, x)   # BiSeNetV2's eval path (main head), before upsampling
        margin = paddle.nn.functional.interpolate(margin, paddle.shape(x)[2:], mode="bilinear",
                                                  align_corners=getattr(self.model, "align_corners", False))
        return paddle.nn.functional.sigmoid(margin)


class MirrorAveraged(nn.Layer):
    """Export wrapper: the mean of ``net(x)`` and the mirror image of ``net(mirror(x))``.

    Flip test-time augmentation inside the exported model: both views go through the network as
    one batch of 2N, so every runtime gets the averaged, mirror-symmetric probability from one
    call. (paddle2onnx cannot convert this layer's flips of a dynamic width, so the ONNX file gets
    the same wrapper as a graph pass: ``training.export.mirror_onnx``.)
    """

    def __init__(self, net: nn.Layer):
        super().__init__()
        self.net = net

    def forward(self, x):
        both = self.net(paddle.concat([x, paddle.flip(x, [3])], axis=0))
        plain, mirrored = paddle.split(both, 2, axis=0)
        return (plain + paddle.flip(mirrored, [3])) * 0.5
