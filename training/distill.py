"""Distillation from a frozen teacher: its person probability, averaged with its mirror-image
prediction, as a soft target for the network being trained.

On val the shipped network's own prediction averaged with its mirrored one (flip
test-time augmentation) scores higher than either alone, but running the network twice
per frame doubles its cost; training against that average is meant to move the single
pass towards it (on v1.9 it did not gain: model card, Training item 12). Set
``distill: {teacher: WEIGHTS, weight: W}`` in a training config.
"""
from __future__ import annotations

from pathlib import Path

import paddle
import paddle.nn.functional as F


class FlipTeacher:
    """A frozen network whose ``__call__`` gives the mean of its person probability on a batch
    and on the batch mirrored (mirrored back), N x H x W, without gradients."""

    def __init__(self, weights: str | Path, flip: bool = True):
        from training.model import (MirrorAveraged, PersonProbability, build_model, edge_head_in, lambd_of,
                                    load_weights)

        if not Path(weights).is_file():
            raise FileNotFoundError(f"distillation teacher {weights} not found: name trained weights "
                                    "(.pdparams or .pdckpt) under distill.teacher")
        state = load_weights(weights)
        edge_head, half_res = edge_head_in(state)
        model = build_model(edge_head, half_res, lambd_of(state))
        model.set_state_dict(state)
        model.eval()
        self.net = MirrorAveraged(PersonProbability(model)) if flip else PersonProbability(model)

    @paddle.no_grad()
    def __call__(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.net(x)[:, 0]


def distill_loss(logits: paddle.Tensor, target: paddle.Tensor) -> paddle.Tensor:
    """Binary cross-entropy of the person probability in two-class ``logits`` (N x 2 x H x W)
    against a soft ``target`` probability (N x H x W), less the target's own entropy, so it
    is 0 when they agree."""
    margin = logits[:, 1] - logits[:, 0]
    t = target.clip(1e-6, 1 - 1e-6)
    bce = F.binary_cross_entropy_with_logits(margin, t, reduction="none")
    entropy = -(t * paddle.log(t) + (1 - t) * paddle.log(1 - t))
    return (bce - entropy).mean()
