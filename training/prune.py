"""Narrow the detail branch of trained weights: the starting point of a cheaper network.

    python -m training.prune --weights training/runs/v42_b30.pdparams --widths 32 32 \
        --out training/runs/v43_pruned.pdparams

BiSeNetV2's detail branch runs 64-channel 3x3 convolutions at 1/2 and 1/4 of the input: at
256x192 they are half the int8 model's time. This keeps the ``--widths`` channels of each of its
first five convolutions that matter most on real photos (mean output times the weight the next
layer gives it), drops the rest, and moves each dropped channel's mean contribution into the next
layer's BatchNorm mean (exact where a dropped channel is constant), then re-estimates every
BatchNorm's statistics on the same photos, so the narrowed network starts close to the wide one. Training then recovers the rest (a config's ``init_weights`` and ``detail_widths``).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 2))

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np

from training.model import DETAIL_QUARTER, detail_widths_of, edge_head_in, lambd_of, load_weights

log = logging.getLogger("training.prune")

EDGE_REDUCE = "edge_head.reduce"     # takes [margin (1), detail at 1/4, image at 1/4 (3)]


def _conv(i: int) -> str:
    return f"db.convs.{i}"


def channel_means(state: dict, images: list[np.ndarray]) -> list[np.ndarray]:
    """Mean output (after ReLU) of each of the detail branch's first ``DETAIL_QUARTER`` layers, per channel."""
    if not images:
        raise ValueError("no photos to rank the channels on")
    import paddle

    from training.data import to_chw_rgb
    from training.model import build_model

    head, half = edge_head_in(state)
    model = build_model(edge_head=head, half_res=half, lambd=lambd_of(state), detail=detail_widths_of(state))
    model.set_state_dict(state)
    model.eval()
    sums = [0.0] * DETAIL_QUARTER
    with paddle.no_grad():
        for img in images:
            x = paddle.to_tensor(to_chw_rgb(img[None]))
            for i in range(DETAIL_QUARTER):
                x = model.db.convs[i](x)
                sums[i] = sums[i] + x.mean(axis=[0, 2, 3]).numpy()
    return [s / len(images) for s in sums]


def _consumers(state: dict, i: int) -> list[tuple[str, int]]:
    """The convolutions (state prefix, first input channel) that read layer ``i``'s output."""
    out = [(_conv(i + 1), 0)]
    if i == DETAIL_QUARTER - 1 and f"{EDGE_REDUCE}._conv.weight" in state:
        out.append((EDGE_REDUCE, 1))
    return out


def prune_detail(state: dict, widths: tuple[int, int], means: list[np.ndarray]) -> dict:
    """``state`` with the detail branch's 1/2 and 1/4 layers narrowed to ``widths`` channels."""
    state = {k: np.asarray(v) for k, v in state.items()}
    for i in range(DETAIL_QUARTER):
        keep_n = widths[0] if i < 2 else widths[1]
        prefix = _conv(i)
        n = state[f"{prefix}._conv.weight"].shape[0]
        if keep_n >= n:
            continue
        consumers = _consumers(state, i)
        reach = sum(np.abs(state[f"{c}._conv.weight"][:, first:first + n]).sum(axis=(0, 2, 3)) for c, first in consumers)
        score = np.abs(means[i]) * reach
        keep = np.sort(np.argsort(-score)[:keep_n])
        drop = np.setdiff1d(np.arange(n), keep)
        for name in ("_conv.weight", "_batch_norm.weight", "_batch_norm.bias", "_batch_norm._mean",
                     "_batch_norm._variance"):
            state[f"{prefix}.{name}"] = state[f"{prefix}.{name}"][keep]
        for c, first in consumers:
            w = state[f"{c}._conv.weight"]
            # a dropped channel's mean reaches each output as mean x (sum of its kernel): fold it into BN
            lost = (w[:, first + drop].sum(axis=(2, 3)) * means[i][drop]).sum(axis=1)
            state[f"{c}._batch_norm._mean"] = state[f"{c}._batch_norm._mean"] - lost.astype(np.float32)
            cols = np.concatenate([np.arange(first), first + keep, np.arange(first + n, w.shape[1])])
            state[f"{c}._conv.weight"] = w[:, cols]
        means = [m if j != i else m[keep] for j, m in enumerate(means)]
        log.info("%s: kept %d of %d channels (kept score %.1f%% of the total)", prefix, keep_n, n,
                 100 * score[keep].sum() / max(score.sum(), 1e-12))
    return state


def recalibrate_batchnorm(state: dict, images: list[np.ndarray], passes: int = 4, batch: int = 8) -> dict:
    """``state`` with every BatchNorm's running mean and variance re-estimated on ``images`` (the narrowed
    branch changes what the aggregation layer and the heads see; the semantic branch's are re-estimated
    too, on the same frame-shaped photos). It replaces the means ``prune_detail`` folded."""
    if len(images) < batch:
        raise ValueError(f"{len(images)} photos re-estimate no BatchNorm in batches of {batch}: give more")
    import paddle

    from training.data import to_chw_rgb
    from training.model import build_model, training_logits

    head, half = edge_head_in(state)
    model = build_model(edge_head=head, half_res=half, lambd=lambd_of(state), detail=detail_widths_of(state))
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    model.train()
    with paddle.no_grad():
        for _ in range(passes):
            for j in range(0, len(images) - batch + 1, batch):
                training_logits(model, paddle.to_tensor(to_chw_rgb(np.stack(images[j:j + batch]))))
    return {k: v.numpy() for k, v in model.state_dict().items()}


def sample_images(list_path: Path, count: int, shape: tuple[int, int] = (192, 256)) -> list[np.ndarray]:
    """``count`` photos from a portrait list, resized to ``shape`` (h, w), BGR uint8."""
    from training.data import read_file_list

    pairs = read_file_list(list_path)
    rng = np.random.default_rng(0)
    out = []
    for j in rng.choice(len(pairs), size=min(count, len(pairs)), replace=False):
        img = cv2.imread(str(pairs[j][0]))
        if img is not None:
            out.append(cv2.resize(img, (shape[1], shape[0]), interpolation=cv2.INTER_AREA))
    return out


def main(argv: list[str] | None = None) -> None:
    import paddle

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="trained weights (.pdparams or .pdckpt)")
    ap.add_argument("--widths", type=int, nargs=2, required=True, metavar=("HALF", "QUARTER"),
                    help="detail-branch channels to keep at 1/2 and at 1/4 of the input")
    ap.add_argument("--out", required=True, help="the .pdparams file to write")
    ap.add_argument("--list", default="../shared/data/portrait/train.txt", help="photos that rank the channels")
    ap.add_argument("--images", type=int, default=128)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not Path(args.list).is_file():
        ap.error(f"--list {args.list} not found: give a portrait list (image and mask paths per line)")
    state = {k: v.numpy() for k, v in load_weights(args.weights).items()}
    images = sample_images(Path(args.list), args.images)
    means = channel_means(state, images)
    pruned = recalibrate_batchnorm(prune_detail(state, tuple(args.widths), means), images)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    paddle.save({k: paddle.to_tensor(v) for k, v in pruned.items()}, args.out)
    log.info("wrote %s (detail widths %s)", args.out, tuple(args.widths))


if __name__ == "__main__":
    main()
