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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.checkpoints import atomic_save, rename_optimizer_state
from training.config import (check_stages, load_config, lr_at, stage_augment, stage_loss, stage_size,
                             total_iterations)
from training.validation import beside_reference, selection_score, validate

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


@dataclass
class RunState:
    """Where a run stands: what a checkpoint saves and a resume restores."""

    iteration: int = 0
    best: float = -1.0
    seconds_before: float = 0.0         # training time of earlier sessions
    checkpoint: dict | None = None      # the checkpoint resumed from


def _load_sets(cfg: dict):
    from training.data import load_portrait_set

    data_root = Path(cfg["data_root"]).expanduser()
    cache_dir = Path(cfg["cache_dir"]).expanduser()
    train_set = load_portrait_set(data_root / cfg["train_list"], cache_dir, cfg["cache_long_side"])
    val_set = load_portrait_set(data_root / cfg["val_list"], cache_dir, cfg["cache_long_side"], with_plates=False)
    log.info("train %d, val %d samples; threads %s", len(train_set), len(val_set), os.environ.get("OMP_NUM_THREADS"))
    return train_set, val_set


def _start_or_resume(cfg: dict, run_dir: Path, model, opt) -> RunState:
    """Resume from ``run_dir``'s last checkpoint (or the config's ``resume_from``); else start from the
    config's ``init_weights`` or ``init_inference`` (released inference files), or from nothing."""
    import paddle

    from training.model import load_weights

    source = run_dir / "last.pdckpt"
    if not source.exists():
        source = Path(cfg["resume_from"]) if cfg.get("resume_from") and Path(cfg["resume_from"]).is_file() else None
    if source is not None:
        ck = paddle.load(str(source))
        model.set_state_dict(ck["model"])
        opt.set_state_dict(rename_optimizer_state(ck["optimizer"], ck.get("param_names", []),
                                                  [p.name for p in model.parameters()]))
        state = RunState(int(ck["iteration"]), float(ck["best"]), float(ck.get("train_seconds", 0.0)), ck)
        log.info("resumed from %s at iteration %d (best score %.4f)", source, state.iteration, state.best)
        return state
    if cfg.get("init_weights"):
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
    return RunState()


def _batch_loader(cfg: dict, train_set, state: RunState):
    """The batch loader (with the room scenes a ``scenes`` block asks for) and the room checks (or None)."""
    from training.data import AugmentConfig, BatchLoader

    scenes, room_checks = None, None
    if cfg.get("scenes"):
        from training.scenes import SceneConfig, SceneMix, load_room_checks

        sc = SceneConfig(**cfg["scenes"])
        scenes = SceneMix(sc, train_set, np.random.default_rng(cfg["seed"] * 7919 + state.iteration))
        room_checks = load_room_checks(Path(sc.rooms_list).expanduser(),
                                       Path(cfg["data_root"]).expanduser() / cfg["val_list"])
        log.info("room scenes: %d of every %d rows (%s)", scenes.per_batch, cfg["batch_size"], sc)
    loader = BatchLoader(train_set, AugmentConfig(**stage_augment(state.iteration, cfg)), cfg["batch_size"],
                         seed=cfg["seed"] * 100003 + state.iteration, scenes=scenes)
    if cfg.get("aspects"):            # frame height / width ratios to train for; absent: square inputs
        loader.set_aspects(cfg["aspects"], *shape_rule(cfg))
        log.info("inputs shaped like frames of height/width %s (short side >= %g of the long, step %d)",
                 cfg["aspects"], *shape_rule(cfg))
    if cfg.get("sizes"):
        loader.set_sizes(cfg["sizes"])
        log.info("input long sides drawn from %s", cfg["sizes"])
    ck = state.checkpoint
    if ck is not None and "sample_loss" in ck and len(ck["sample_loss"]) == len(train_set):
        loader.sampler.loss = np.asarray(ck["sample_loss"], np.float64)
    return loader, room_checks


def shape_rule(cfg: dict) -> tuple[float, int]:
    """The short-side floor and step a config's frame-shaped inputs follow (meta.json's, after export)."""
    return float(cfg.get("short_side_floor", 0.75)), int(cfg.get("short_side_step", 32))


def _stop_on_signals() -> dict:
    """A flag SIGTERM and SIGINT raise: the loop saves and stops at the end of its step."""
    stop = {"flag": False}

    def _on_signal(signum, _frame):
        log.info("signal %d: saving and stopping", signum)
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    return stop


def _check(cfg: dict, model, val_set, size: int, room_checks, state: RunState, run_dir: Path, elapsed: float) -> None:
    """Training's check: the figures to ``val.jsonl`` and the log, ``best.pdparams`` when the score rose."""
    m = validate(model, val_set, size, room_checks=room_checks, frame_aspect=bool(cfg.get("aspects")),
                 shape_rule=shape_rule(cfg))
    model.train()
    m.update(iteration=state.iteration, size=size, minutes=round((state.seconds_before + elapsed) / 60, 1))
    with open(run_dir / "val.jsonl", "a") as f:
        f.write(json.dumps(m) + "\n")
    log.info("val %s", m)
    log.info("beside: %s", beside_reference(m))
    if selection_score(m) > state.best:
        state.best = selection_score(m)
        atomic_save(model.state_dict(), run_dir / "best.pdparams")
        (run_dir / "best.json").write_text(json.dumps(m, indent=1))


def _train(cfg: dict, run_dir: Path, max_minutes: float | None) -> None:
    import paddle

    from training.data import AugmentConfig
    from training.losses import bisenet_loss
    from training.model import build_network, training_logits

    check_stages(cfg)
    train_set, val_set = _load_sets(cfg)
    paddle.seed(cfg["seed"])
    model = build_network(cfg)
    oc = cfg["optimizer"]
    opt = paddle.optimizer.Momentum(learning_rate=oc["lr"], momentum=oc["momentum"],
                                    weight_decay=oc["weight_decay"], parameters=model.parameters())
    total = total_iterations(cfg["stages"])
    state = _start_or_resume(cfg, run_dir, model, opt)
    loader, room_checks = _batch_loader(cfg, train_set, state)
    aug, lc = stage_augment(state.iteration, cfg), stage_loss(state.iteration, cfg)
    stop = _stop_on_signals()

    def save() -> None:
        atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "iteration": state.iteration,
                     "best": state.best, "config": cfg,
                     "train_seconds": state.seconds_before + time.time() - t_start,
                     "param_names": [p.name for p in model.parameters()], "sample_loss": loader.sampler.loss},
                    run_dir / "last.pdckpt")

    model.train()
    t_start = time.time()
    t_win, n_win, loss_win = time.time(), 0, 0.0
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm
        bar = tqdm(total=total, initial=state.iteration, unit="it")
    while state.iteration < total and not stop["flag"]:
        size = stage_size(state.iteration, cfg["stages"])
        loader.set_size(size)
        if stage_augment(state.iteration, cfg) != aug:
            aug = stage_augment(state.iteration, cfg)
            loader.set_augment(AugmentConfig(**aug))
            log.info("it %d: augmentation now %s", state.iteration, aug)
        if stage_loss(state.iteration, cfg) != lc:
            lc = stage_loss(state.iteration, cfg)
            log.info("it %d: loss now %s", state.iteration, lc)
        lr = lr_at(state.iteration, total, oc)
        opt.set_lr(lr)
        x, y, e, idx = loader.next()
        loss, parts = bisenet_loss(training_logits(model, paddle.to_tensor(x)), paddle.to_tensor(y),
                                   paddle.to_tensor(e), **lc)
        loader.sampler.record(idx, parts["per_image"][:len(idx)])
        loss.backward()
        opt.step()
        opt.clear_grad()
        state.iteration += 1
        it = state.iteration
        n_win, loss_win = n_win + 1, loss_win + float(loss)
        if bar is not None:
            bar.update(1)
        if it % cfg["log_every"] == 0:
            dt = time.time() - t_win
            part_text = " ".join(f"{k} {v:.3f}" for k, v in parts.items() if k != "per_image")
            log.info("it %d/%d size %d lr %.4f loss %.4f (%s) %.2f img/s eta %.1fh", it, total, size, lr,
                     loss_win / n_win, part_text, n_win * cfg["batch_size"] / dt, (total - it) * dt / n_win / 3600)
            t_win, n_win, loss_win = time.time(), 0, 0.0
        if it % cfg["val_every"] == 0 or it == total:
            _check(cfg, model, val_set, size, room_checks, state, run_dir, time.time() - t_start)
        if it % cfg["save_every"] == 0:
            save()
        if max_minutes is not None and time.time() - t_start > max_minutes * 60:
            log.info("time budget of %.0f min used", max_minutes)
            break
    save()
    loader.close()
    log.info("stopped at iteration %d/%d, best score %.4f", state.iteration, total, state.best)


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
