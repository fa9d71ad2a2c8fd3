"""Widen a trained BiSeNetV2's semantic branch (``lambd`` 0.25 -> 0.5) without changing what it computes.

    python -m training.widen --weights training/runs/v1.9_edge.pdparams \
        --out training/runs/v1.9_wide.pdparams

PaddleSeg's ``lambd`` sets the width of the semantic branch's stem and third stage (16 and 32
channels at 0.25, 32 and 64 at 0.5; the fourth and fifth stages stay 64 and 128). Training a
wider network from scratch would cost ~10 hours here, so the trained one is widened the
Net2Net way (Chen et al. 2016): every widened tensor is the narrow one twice over ([a, a]), so
each layer making one repeats its output filters and BatchNorm statistics, and each layer reading
one splits its input weights between the two copies (``w * (1/2 + d)`` and ``w * (1/2 - d)``,
``d`` random): the sum is unchanged, so the network's output is too, while the random split lets
the copies learn different things. The stem's concat ([left, pool]) becomes [left, left, pool,
pool], which its fuse conv's input weights follow.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 2))

import argparse
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger("training.widen")

CONCAT_INPUTS = {"sb.stem.fuse._conv.weight": 2}   # input channels made of this many concatenated tensors


def _split_inputs(w: np.ndarray, parts: int, rng: np.random.Generator, spread: float) -> np.ndarray:
    """Input weights for inputs that each appear twice: [copy A, copy B] per concatenated part."""
    out = []
    for part in np.split(w, parts, axis=1):
        d = rng.uniform(-spread, spread, part.shape).astype(w.dtype)
        out += [part * (0.5 + d), part * (0.5 - d)]
    return np.concatenate(out, axis=1)


def widen_state(state: dict, wide_shapes: dict, seed: int = 0, spread: float = 0.25) -> dict:
    """``state`` (numpy arrays) reshaped to ``wide_shapes``: dims that double are widened as above;
    every other dim must be unchanged."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, w in state.items():
        want = tuple(wide_shapes[key])
        if w.shape == want:
            out[key] = w
            continue
        ratios = [b / a for a, b in zip(w.shape, want)]
        if len(want) != w.ndim or any(r not in (1, 2) for r in ratios) or any(r == 2 for r in ratios[2:]):
            raise ValueError(f"{key}: cannot widen {w.shape} to {want}")
        if ratios[0] == 2:
            w = np.concatenate([w, w], axis=0)
        if len(ratios) > 1 and ratios[1] == 2:
            w = _split_inputs(w, CONCAT_INPUTS.get(key, 1), rng, spread)
        out[key] = w
    return out


def widen(weights: str | Path, lambd: float = 0.5, seed: int = 0) -> dict:
    """The weights in ``weights`` (any edge head kept as it is) on a network of semantic width ``lambd``."""
    from training.model import build_model, edge_head_in, lambd_of, load_weights

    state = {k: v.numpy() for k, v in load_weights(weights).items()}
    if lambd_of(state) != 0.25:
        raise ValueError(f"{weights} is already a lambd {lambd_of(state)} network")
    head, half = edge_head_in(state)
    wide = build_model(edge_head=head, half_res=half, lambd=lambd).state_dict()
    return widen_state(state, {k: v.shape for k, v in wide.items()}, seed)


def main(argv: list[str] | None = None) -> None:
    import paddle

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="trained lambd 0.25 weights (.pdparams or .pdckpt)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--lambd", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not Path(args.weights).is_file():
        ap.error(f"weights file {args.weights} not found")
    try:
        state = widen(args.weights, args.lambd, args.seed)
    except ValueError as e:
        ap.error(str(e))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, args.out)
    log.info("wrote %s (%d tensors, %.2f M parameters)", args.out, len(state),
             sum(v.size for v in state.values()) / 1e6)


if __name__ == "__main__":
    main()
