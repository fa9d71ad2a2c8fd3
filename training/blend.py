"""Average the weights of networks of the same shape (WiSE-FT: a fine-tuned network blended back
towards the one it started from keeps most of what each is good at).

    python -m training.blend --out training/runs/v3.0.pdparams \\
        training/runs/portrait_v3/last.pdckpt:0.45 training/runs/v2.0_edge.pdparams:0.55

Each input is ``FILE:SHARE`` (a ``.pdparams`` file or a training checkpoint); shares are
normalised to sum to 1. Float tensors are averaged; integer ones (counters) come from the first.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def blend_weights(pairs: list[tuple[str | Path, float]]) -> dict[str, np.ndarray]:
    """The share-weighted average of the state dicts in ``pairs`` of (weights file, share)."""
    from training.model import load_weights

    if not pairs:
        raise ValueError("nothing to blend: give at least one FILE:SHARE")
    for path, share in pairs:
        if not Path(path).is_file():
            raise FileNotFoundError(f"weights {path} not found")
        if share < 0:
            raise ValueError(f"share {share} of {path} is negative")
    total = sum(share for _, share in pairs)
    if total <= 0:
        raise ValueError("the shares sum to 0")
    states = [(load_weights(path), share / total) for path, share in pairs]
    first = states[0][0]
    for (state, _), (path, _) in zip(states[1:], pairs[1:]):
        if set(state) != set(first) or any(np.shape(state[k]) != np.shape(first[k]) for k in first):
            raise ValueError(f"{path} holds other tensors than {pairs[0][0]}: not the same network")
    out = {}
    for key, tensor in first.items():
        arr = np.asarray(tensor)
        if arr.dtype.kind == "f":
            arr = sum(np.asarray(state[key], np.float64) * share for state, share in states).astype(arr.dtype)
        out[key] = arr
    return out


def _pair(text: str) -> tuple[str, float]:
    path, sep, share = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: give FILE:SHARE, e.g. last.pdckpt:0.45")
    try:
        return path, float(share)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the share {share!r} is not a number") from None


def main(argv: list[str] | None = None) -> None:
    import paddle

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", nargs="+", type=_pair, help="FILE:SHARE")
    ap.add_argument("--out", required=True, help="the blended .pdparams")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    state = blend_weights(args.weights)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, args.out)
    log.info("wrote %s: %s", args.out, " + ".join(f"{s:g} x {p}" for p, s in args.weights))


if __name__ == "__main__":
    main()
