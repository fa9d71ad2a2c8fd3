"""Segmentation losses written against Paddle 3 (PaddleSeg's own break on 0-d tensors)."""
from __future__ import annotations

import paddle
import paddle.nn.functional as F


def soft_ce(logits: paddle.Tensor, target: paddle.Tensor) -> paddle.Tensor:
    """Per-pixel two-class cross-entropy (N x H x W) against a person target in [0, 1]: a 0/1 mask
    gives plain cross-entropy, a soft label (a teacher's alpha) the cross-entropy to that probability."""
    ls = F.log_softmax(logits, axis=1)
    return -(target * ls[:, 1] + (1.0 - target) * ls[:, 0])


def weighted_ce(logits: paddle.Tensor, labels: paddle.Tensor, edge: paddle.Tensor,
                edge_weight: float) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Pixel cross-entropy, pixels near the person outline weighted ``1 + edge_weight``:
    over the batch, and per image (detached, for hard-example sampling)."""
    ce = soft_ce(logits, labels)
    w = 1.0 + edge_weight * edge
    weighted = ce * w
    per_image = (weighted.sum(axis=[1, 2]) / w.sum(axis=[1, 2])).detach()
    return weighted.sum() / w.sum(), per_image


def soft_dice(logits: paddle.Tensor, labels: paddle.Tensor, eps: float = 1.0) -> paddle.Tensor:
    """1 - Dice of the person probability against the mask, per image, averaged."""
    p = F.softmax(logits, axis=1)[:, 1]
    t = labels.astype(p.dtype)
    inter = (p * t).sum(axis=[1, 2])
    denom = p.sum(axis=[1, 2]) + t.sum(axis=[1, 2])
    return (1 - (2 * inter + eps) / (denom + eps)).mean()


def lovasz_hinge(logits: paddle.Tensor, labels: paddle.Tensor) -> paddle.Tensor:
    """Per-image Lovasz hinge (Berman et al., CVPR 2018) on the person-vs-background margin, averaged.

    A convex surrogate of each image's Jaccard loss (1 - person IoU): where every pixel's
    margin error is 0 or 1 it equals that loss exactly. It weighs images by how badly their
    IoU suffers, as the evaluation's mean-over-images IoU does, where pixel CE does not.
    """
    n = logits.shape[0]
    margin = (logits[:, 1] - logits[:, 0]).reshape([n, -1])
    truth = labels.reshape([n, -1]).astype(margin.dtype)
    errors = 1.0 - margin * (2.0 * truth - 1.0)
    order = paddle.argsort(errors, axis=1, descending=True)
    errors_sorted = paddle.take_along_axis(errors, order, axis=1)
    truth_sorted = paddle.take_along_axis(truth, order, axis=1)
    positives = truth_sorted.sum(axis=1, keepdim=True)
    intersection = positives - truth_sorted.cumsum(axis=1)
    union = positives + (1.0 - truth_sorted).cumsum(axis=1)
    jaccard = 1.0 - intersection / union
    grad = paddle.concat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], axis=1).detach()
    return (F.relu(errors_sorted) * grad).sum(axis=1).mean()


def bisenet_loss(outputs: list[paddle.Tensor], labels: paddle.Tensor, edge: paddle.Tensor,
                 edge_weight: float = 4.0, dice_weight: float = 0.5, aux_weight: float = 1.0,
                 lovasz_weight: float = 0.0) -> tuple[paddle.Tensor, dict]:
    """CE on the main and the four auxiliary heads; boundary weighting, Dice and (optionally)
    the Lovasz hinge on the main head. ``labels``: 0/1 masks or soft person targets, N x H x W.

    The parts dict also holds ``per_image``: each image's main-head CE (numpy).
    """
    labels = labels.astype("float32")
    main, per_image = weighted_ce(outputs[0], labels, edge, edge_weight)
    dice = soft_dice(outputs[0], labels)
    aux = sum(soft_ce(o, labels).mean() for o in outputs[1:])
    total = main + dice_weight * dice + aux_weight * aux
    parts = {"ce": float(main), "dice": float(dice), "aux": float(aux), "per_image": per_image.numpy()}
    if lovasz_weight:
        lovasz = lovasz_hinge(outputs[0], (labels > 0.5).astype("float32"))
        total = total + lovasz_weight * lovasz
        parts["lovasz"] = float(lovasz)
    return total, parts
