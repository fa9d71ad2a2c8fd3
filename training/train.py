"""Resumable BiSeNetV2 portrait training on the CPU (or a GPU when Paddle sees one).

    python -m training.train --config training/configs/portrait_bisenetv4.yml     # start, or resume
    python -m training.train --config ... --max-minutes 60                          # stop (and save) after an hour

Train: a config names its data, run folder (``run_dir``), stages and, for a fine-tune, the
``init_weights`` it starts from. Resume: run the same command again; it carries on from
``<run_dir>/last.pdckpt`` (saved every ``save_every`` iterations and on Ctrl+C / SIGTERM), or from
a checkpoint file the config names as ``resume_from`` when the run folder has none. Export:
``python -m training.export --weights <run_dir>/best.pdparams --out DIR`` (see the README's Model section).
With a ``scenes`` block (``training.scenes.SceneConfig``) part of every batch is room scenes,
and every check also scores the held-out rooms. The run folder gets ``best.pdparams`` (weights
with the best ``selection_score``), ``train.log`` and ``val.jsonl``.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 2))  # before paddle: it forces 1 otherwise

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

import numpy as np

from training.checkpoints import atomic_save, rename_optimizer_state
from training.config import (check_stages, load_config, lr_at, stage_augment, stage_loss, stage_size,
                             total_iterations)
from training.validation import selection_score, validate

log = logging.getLogger("training")


def train(cfg: dict, max_minutes: float | None = None) -> None:
    """Train (or resume) the run described by ``cfg``; logs to ``<run_dir>/train.log``."""
    run_dir = Path(cfg["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    fh = logging.FileHandler(run_dir / "train.log")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(fh)
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    try:
        _train(cfg, run_dir, max_minutes)
    finally:
        log.removeHandler(fh)
        fh.close()


def _train(cfg: dict, run_dir: Path, max_minutes: float | None) -> None:
    import paddle

    from training.data import AugmentConfig, BatchLoader, load_portrait_set
    from training.losses import bisenet_loss
    from training.model import build_network, load_weights, training_logits

    check_stages(cfg)
    data_root = Path(cfg["data_root"]).expanduser()
    cache_dir = Path(cfg["cache_dir"]).expanduser()
    train_set = load_portrait_set(data_root / cfg["train_list"], cache_dir, cfg["cache_long_side"])
    val_set = load_portrait_set(data_root / cfg["val_list"], cache_dir, cfg["cache_long_side"], with_plates=False)
    log.info("train %d, val %d samples; threads %s", len(train_set), len(val_set), os.environ.get("OMP_NUM_THREADS"))

    paddle.seed(cfg["seed"])
    model = build_network(cfg)
    oc = cfg["optimizer"]
    opt = paddle.optimizer.Momentum(learning_rate=oc["lr"], momentum=oc["momentum"],
                                    weight_decay=oc["weight_decay"], parameters=model.parameters())
    total = total_iterations(cfg["stages"])
    it, best, seconds_before = 0, -1.0, 0.0
    ckpt_path = run_dir / "last.pdckpt"
    source = ckpt_path if ckpt_path.exists() else None
    if source is None and cfg.get("resume_from") and Path(cfg["resume_from"]).is_file():
        source = Path(cfg["resume_from"])
    if source is not None:
        ck = paddle.load(str(source))
        model.set_state_dict(ck["model"])
        opt.set_state_dict(rename_optimizer_state(ck["optimizer"], ck.get("param_names", []),
                                                  [p.name for p in model.parameters()]))
        it, best = int(ck["iteration"]), float(ck["best"])
        seconds_before = float(ck.get("train_seconds", 0.0))
        log.info("resumed from %s at iteration %d (best score %.4f)", source, it, best)
    elif cfg.get("init_weights"):
        init = Path(cfg["init_weights"])
        if not init.is_file():
            raise FileNotFoundError(f"init_weights {init} not found: train the weights it names first "
                                    "(or remove init_weights from the config)")
        model.set_state_dict(load_weights(init))
        log.info("starting from the weights in %s", cfg["init_weights"])
    elif cfg.get("init_inference"):
        from training.mobileseg import load_inference_weights

        n = load_inference_weights(model, Path(cfg["init_inference"]).expanduser())
        atomic_save(model.state_dict(), run_dir / "init.pdparams")     # what training.blend blends back towards
        log.info("starting from the %d variables of the inference files in %s", n, cfg["init_inference"])

    scenes, room_checks = None, None
    if cfg.get("scenes"):
        from training.scenes import SceneConfig, SceneMix, load_room_checks

        sc = SceneConfig(**cfg["scenes"])
        scenes = SceneMix(sc, train_set, np.random.default_rng(cfg["seed"] * 7919 + it))
        room_checks = load_room_checks(Path(sc.rooms_list).expanduser(), data_root / cfg["val_list"])
        log.info("room scenes: %d of every %d rows (%s)", scenes.per_batch, cfg["batch_size"], sc)

    aug = stage_augment(it, cfg)
    loader = BatchLoader(train_set, AugmentConfig(**aug), cfg["batch_size"],
                         seed=cfg["seed"] * 100003 + it, scenes=scenes)
    aspects = cfg.get("aspects")      # frame height / width ratios to train for; absent: square inputs
    shape_rule = (float(cfg.get("short_side_floor", 0.75)), int(cfg.get("short_side_step", 32)))
    if aspects:
        loader.set_aspects(aspects, *shape_rule)
        log.info("inputs shaped like frames of height/width %s (short side >= %g of the long, step %d)",
                 aspects, *shape_rule)
    if cfg.get("sizes"):
        loader.set_sizes(cfg["sizes"])
        log.info("input long sides drawn from %s", cfg["sizes"])
    if source is not None and "sample_loss" in ck and len(ck["sample_loss"]) == len(train_set):
        loader.sampler.loss = np.asarray(ck["sample_loss"], np.float64)
    stop = {"flag": False}

    def _on_signal(signum, _frame):
        log.info("signal %d: saving and stopping", signum)
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    def save() -> None:
        atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "iteration": it,
                     "best": best, "config": cfg, "train_seconds": seconds_before + time.time() - t_start,
                     "param_names": [p.name for p in model.parameters()],
                     "sample_loss": loader.sampler.loss},
                    ckpt_path)

    lc = stage_loss(it, cfg)
    model.train()
    t_start = time.time()
    t_win, n_win, loss_win = time.time(), 0, 0.0
    use_bar = sys.stderr.isatty()
    bar = None
    if use_bar:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=it, unit="it")
    while it < total and not stop["flag"]:
        size = stage_size(it, cfg["stages"])
        loader.set_size(size)
        stage_aug = stage_augment(it, cfg)
        if stage_aug != aug:
            aug = stage_aug
            loader.set_augment(AugmentConfig(**aug))
            log.info("it %d: augmentation now %s", it, aug)
        stage_lc = stage_loss(it, cfg)
        if stage_lc != lc:
            lc = stage_lc
            log.info("it %d: loss now %s", it, lc)
        lr = lr_at(it, total, oc)
        opt.set_lr(lr)
        x, y, e, idx = loader.next()
        x = paddle.to_tensor(x)
        outs = training_logits(model, x)
        loss, parts = bisenet_loss(outs, paddle.to_tensor(y), paddle.to_tensor(e), **lc)
        loader.sampler.record(idx, parts["per_image"][:len(idx)])
        loss.backward()
        opt.step()
        opt.clear_grad()
        it += 1
        n_win += 1
        loss_win += float(loss)
        if bar is not None:
            bar.update(1)
        if it % cfg["log_every"] == 0:
            dt = time.time() - t_win
            ips = n_win * cfg["batch_size"] / dt
            eta_h = (total - it) * dt / n_win / 3600
            part_text = " ".join(f"{k} {v:.3f}" for k, v in parts.items() if k != "per_image")
            log.info("it %d/%d size %d lr %.4f loss %.4f (%s) %.2f img/s eta %.1fh",
                     it, total, size, lr, loss_win / n_win, part_text, ips, eta_h)
            t_win, n_win, loss_win = time.time(), 0, 0.0
        if it % cfg["val_every"] == 0 or it == total:
            m = validate(model, val_set, size, room_checks=room_checks, frame_aspect=bool(aspects),
                         shape_rule=shape_rule)
            model.train()
            m.update(iteration=it, size=size, minutes=round((seconds_before + time.time() - t_start) / 60, 1))
            with open(run_dir / "val.jsonl", "a") as f:
                f.write(json.dumps(m) + "\n")
            log.info("val %s", m)
            if selection_score(m) > best:
                best = selection_score(m)
                atomic_save(model.state_dict(), run_dir / "best.pdparams")
                (run_dir / "best.json").write_text(json.dumps(m, indent=1))
        if it % cfg["save_every"] == 0:
            save()
        if max_minutes is not None and time.time() - t_start > max_minutes * 60:
            log.info("time budget of %.0f min used", max_minutes)
            break
    save()
    loader.close()
    log.info("stopped at iteration %d/%d, best score %.4f", it, total, best)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="training/configs/portrait_bisenetv2.yml")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after this long")
    ap.add_argument("--iters", type=int, default=None, help="override the total: scale every stage to this many")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = load_config(args.config)
    if args.iters is not None:
        total = total_iterations(cfg["stages"])
        cfg["stages"] = [[max(1, round(st[0] * args.iters / total)), *st[1:]] for st in cfg["stages"]]
    train(cfg, args.max_minutes)


if __name__ == "__main__":
    main()
