"""Train ``training.model.EdgeHead`` on top of trained, frozen BiSeNetV2 weights.

    python -m training.train_edge_head --weights training/runs/portrait_bisenetv2/best.pdparams \
        [--run-dir training/runs/edge_head] [--epochs 24] [--max-minutes 60]

The backbone does not change, so its outputs (the 1/8 person margin and the detail branch's
1/4 features) are computed once per training view and kept on disk (``--cache-dir``): each
training photo squashed to the input size as the app feeds it, its mirror image, and
``--augmented-views`` views through the "light" augmentation. The head then trains on those
in seconds per epoch. Resumable (``last.pdckpt`` in the run folder, per epoch); the best epoch
by validation mIoU is written as ``best.pdparams``: backbone plus head, for ``training.export``.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 2))

import argparse
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from training.checkpoints import atomic_save, rename_optimizer_state
from training.config import load_config, profile_settings
from training.validation import check_figures, score_probabilities

log = logging.getLogger("training.train_edge_head")


@dataclass
class Views:
    """Backbone outputs for a set of input views, with the images and masks they came from."""

    images: np.ndarray    # N x S x S x 3 uint8 BGR, the network's input before normalisation
    masks: np.ndarray     # N x S x S uint8 0/1
    margin8: np.ndarray   # N x 1 x S/8 x S/8 float16, person minus background logit
    detail4: np.ndarray   # N x 64 x S/4 x S/4 float16, the detail branch after its fifth conv

    def __len__(self) -> int:
        return len(self.images)

    def head_inputs(self, idx) -> tuple:
        """The edge head's inputs for views ``idx`` (a slice or indices), as float32 tensors."""
        import paddle

        from training.data import to_chw_rgb

        return (paddle.to_tensor(self.margin8[idx].astype(np.float32)),
                paddle.to_tensor(self.detail4[idx].astype(np.float32)),
                paddle.to_tensor(to_chw_rgb(self.images[idx])))


def backbone_outputs(model, images_bgr: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The frozen network's 1/8 person margin and 1/4 detail features for uint8 BGR images."""
    import paddle

    from training.data import to_chw_rgb
    from training.model import backbone_parts

    margins, details = [], []
    with paddle.no_grad():
        for s in range(0, len(images_bgr), batch):
            detail4, _, margin8 = backbone_parts(model, paddle.to_tensor(to_chw_rgb(images_bgr[s:s + batch])))
            margins.append(margin8.numpy().astype(np.float16))
            details.append(detail4.numpy().astype(np.float16))
    return np.concatenate(margins), np.concatenate(details)


def backbone_digest(state: dict) -> str:
    """A short hash of the backbone's weights, naming its cached outputs."""
    h = hashlib.sha1()
    for k in sorted(state):
        h.update(k.encode())
        h.update(np.asarray(state[k]).tobytes())
    return h.hexdigest()[:12]


def squash(img: np.ndarray, size: int) -> np.ndarray:
    """Resize to size x size as ``inference.Segmenter`` does."""
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def build_views(model, data, size: int, augmented: int, seed: int, augment: dict | None = None,
                mirror: bool = True) -> Views:
    """Each sample as the app sees it, optionally mirrored, plus ``augmented`` views through ``augment``."""
    from training.data import AugmentConfig, Augmenter

    aug = Augmenter(data, AugmentConfig(**(augment or {})), np.random.default_rng(seed))
    images, masks = [], []
    for i in range(len(data)):
        img = squash(data.images[i], size)
        mask = cv2.resize(data.masks[i], (size, size), interpolation=cv2.INTER_NEAREST)
        images.append(img)
        masks.append(mask)
        if mirror:
            images.append(img[:, ::-1])
            masks.append(mask[:, ::-1])
        for _ in range(augmented):
            a, m = aug.sample(i, (size, size))
            images.append(a)
            masks.append(m)
    images = np.ascontiguousarray(np.stack(images))
    masks = np.ascontiguousarray(np.stack(masks)).astype(np.uint8)
    t0 = time.monotonic()
    margin8, detail4 = backbone_outputs(model, images)
    log.info("backbone outputs for %d views in %.0f s", len(images), time.monotonic() - t0)
    return Views(images, masks, margin8, detail4)


def load_or_build_views(path: Path, build) -> Views:
    """The views cached at ``path``, or ``build()``'s, written there (atomically) for the next run."""
    if path.exists():
        z = np.load(path)
        log.info("loaded %d views from %s", len(z["images"]), path)
        return Views(z["images"], z["masks"], z["margin8"], z["detail4"])
    views = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, images=views.images, masks=views.masks, margin8=views.margin8, detail4=views.detail4)
    os.replace(tmp, path)
    return views


def head_loss(margin, masks, edge, edge_weight: float = 4.0, lovasz_weight: float = 0.5):
    """Boundary-weighted logistic loss plus the per-image Lovasz hinge, at the input's resolution."""
    import paddle
    import paddle.nn.functional as F

    from training.losses import lovasz_hinge

    margin = F.interpolate(margin, masks.shape[1:], mode="bilinear", align_corners=False)[:, 0]
    t = masks.astype(margin.dtype)
    w = 1.0 + edge_weight * edge.astype(margin.dtype)
    bce = (F.binary_cross_entropy_with_logits(margin, t, reduction="none") * w).sum() / w.sum()
    two_class = paddle.stack([paddle.zeros_like(margin), margin], axis=1)
    return bce + lovasz_weight * lovasz_hinge(two_class, masks)


def validate_head(model, views: Views, data, batch: int = 25) -> dict:
    """Person IoU and mIoU on the validation photos (at their cached size), as ``training.validation.validate``
    scores them, except that the probability is upsampled from the head's grid rather than from 256
    (within ~0.0002 of it)."""
    import paddle

    from training.metrics import GroupedScores

    model.edge_head.eval()
    scores = GroupedScores()
    with paddle.no_grad():
        for s in range(0, len(views), batch):
            refined = model.edge_head(*views.head_inputs(slice(s, s + batch)))
            score_probabilities(scores, paddle.nn.functional.sigmoid(refined)[:, 0].numpy(), data, s)
    model.edge_head.train()
    return check_figures(scores)


def train_head(cfg: dict, weights: Path, run_dir: Path, cache_dir: Path, epochs: int, size: int = 256,
               augmented: int = 1, batch: int = 32, lr: float = 2e-3, seed: int = 42,
               max_minutes: float | None = None, half_res: bool = True, head_from: Path | None = None) -> dict | None:
    """Train the head; returns the best epoch's figures, or None when ``max_minutes`` stopped it early.

    ``cfg`` is the network's training config: its data set, and its "light" augmentation profile
    for the augmented views. The head starts from the one in ``head_from`` (e.g. the shipped
    model's, for a retrained network) or else from one ``weights`` already hold, or else at zero.
    """
    import paddle

    from training.data import boundary_band, load_portrait_set
    from training.model import EdgeHead, build_model, lambd_of, load_weights

    start = time.monotonic()
    root = Path(cfg["data_root"]).expanduser()
    data_cache = Path(cfg["cache_dir"]).expanduser()
    train_set = load_portrait_set(root / cfg["train_list"], data_cache, cfg["cache_long_side"])
    val_set = load_portrait_set(root / cfg["val_list"], data_cache, cfg["cache_long_side"], with_plates=False)

    paddle.seed(seed)
    state = load_weights(weights)
    model = build_model(lambd=lambd_of(state))
    backbone = {k: v for k, v in state.items() if not k.startswith("edge_head.")}
    model.set_state_dict(backbone)
    model.eval()
    model.edge_head = EdgeHead(half_res=half_res)
    head_source = head_from or weights
    source_state = state if head_from is None else load_weights(head_from)
    head_state = {k[len("edge_head."):]: v for k, v in source_state.items() if k.startswith("edge_head.")}
    if head_from is not None and not head_state:
        raise ValueError(f"{head_from} holds no edge head")
    if head_state:     # continue from a trained head; stages it does not have start at zero
        model.edge_head.set_state_dict(head_state)
        log.info("the head starts from the one in %s (%d tensors)", head_source, len(head_state))
    key = f"{backbone_digest(backbone)}_{size}"
    light = {**cfg.get("augment", {}), **profile_settings("light", cfg.get("augment_profiles", {}))}
    light.pop("loss", None)
    train_views = load_or_build_views(cache_dir / f"train_{key}_m1_a{augmented}_s{seed}.npz",
                                      lambda: build_views(model, train_set, size, augmented, seed, light))
    val_views = load_or_build_views(cache_dir / f"val_{key}.npz",
                                    lambda: build_views(model, val_set, size, 0, seed, mirror=False))
    edges = np.stack([boundary_band(m) for m in train_views.masks])

    head = model.edge_head
    head.train()
    steps_per_epoch = len(train_views) // batch
    total = epochs * steps_per_epoch
    sched = paddle.optimizer.lr.CosineAnnealingDecay(lr, T_max=total)
    opt = paddle.optimizer.Adam(learning_rate=sched, parameters=head.parameters(), weight_decay=1e-5)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt, epoch, best = run_dir / "last.pdckpt", 0, -1.0
    if ckpt.exists():
        ck = paddle.load(str(ckpt))
        head.set_state_dict(ck["head"])
        opt.set_state_dict(rename_optimizer_state(ck["optimizer"], ck["param_names"],
                                                  [p.name for p in head.parameters()]))
        sched.set_state_dict(ck["scheduler"])
        epoch, best = int(ck["epoch"]), float(ck["best"])
        log.info("resumed from %s after epoch %d (best mIoU %.4f)", ckpt, epoch, best)
    else:
        base = validate_head(model, val_views, val_set)
        log.info("before training (the new head adds zero): %s", json.dumps(base))
        with open(run_dir / "val.jsonl", "a") as f:
            f.write(json.dumps({"epoch": 0, **base}) + "\n")
    rng = np.random.default_rng(seed)
    for _ in range(epoch):
        rng.permutation(len(train_views))          # the same order as an uninterrupted run
    while epoch < epochs:
        order = rng.permutation(len(train_views))
        losses = []
        for s in range(steps_per_epoch):
            idx = np.sort(order[s * batch:(s + 1) * batch])
            loss = head_loss(head(*train_views.head_inputs(idx)),
                             paddle.to_tensor(train_views.masks[idx].astype(np.int64)),
                             paddle.to_tensor(edges[idx]))
            loss.backward()
            opt.step()
            opt.clear_grad()
            sched.step()
            losses.append(float(loss))
        epoch += 1
        val = validate_head(model, val_views, val_set)
        log.info("epoch %d/%d loss %.4f lr %.2e val %s", epoch, epochs, np.mean(losses), sched.get_lr(),
                 json.dumps({k: round(v, 4) for k, v in val.items() if v is not None}))
        with open(run_dir / "val.jsonl", "a") as f:
            f.write(json.dumps({"epoch": epoch, **val}) + "\n")
        if val["miou"] > best:
            best = val["miou"]
            atomic_save(model.state_dict(), run_dir / "best.pdparams")
            (run_dir / "best.json").write_text(json.dumps({"epoch": epoch, "weights": str(weights), **val}))
        atomic_save({"head": head.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                     "epoch": epoch, "best": best, "param_names": [p.name for p in head.parameters()]}, ckpt)
        if max_minutes is not None and time.monotonic() - start > max_minutes * 60:
            log.info("stopping after %.0f min (--max-minutes); resume with the same command", max_minutes)
            return None
    return json.loads((run_dir / "best.json").read_text())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="trained BiSeNetV2 weights (.pdparams or .pdckpt)")
    ap.add_argument("--config", default="training/configs/portrait_bisenetv2.yml",
                    help="the network's training config (data set, augmentation)")
    ap.add_argument("--run-dir", default="training/runs/edge_head")
    ap.add_argument("--cache-dir", default="~/.cache/bgswap-train/edge_head")
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--input-size", type=int, default=256)
    ap.add_argument("--augmented-views", type=int, default=1, help="light-augmented views per photo")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--quarter-only", action="store_true", help="a head without its 1/2-resolution stage")
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--head-from", help="weights whose edge head to start from (default: the one --weights holds, "
                                        "if any; else a new head)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    weights = Path(args.weights)
    if not weights.is_file():
        ap.error(f"weights file {weights} not found: give the trained network's best.pdparams")
    if args.head_from and not Path(args.head_from).is_file():
        ap.error(f"--head-from {args.head_from} not found")
    if args.input_size % 32:
        ap.error(f"--input-size {args.input_size} is not a multiple of 32")
    best = train_head(load_config(args.config), weights, Path(args.run_dir), Path(args.cache_dir).expanduser(),
                      args.epochs, args.input_size, args.augmented_views, args.batch_size, args.lr, args.seed,
                      args.max_minutes, half_res=not args.quarter_only,
                      head_from=Path(args.head_from) if args.head_from else None)
    if best is not None:
        log.info("best epoch %d: %s", best["epoch"], json.dumps(best))


if __name__ == "__main__":
    main()
