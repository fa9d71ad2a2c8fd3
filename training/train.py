"""Resumable BiSeNetV2 portrait training on the CPU.

    python -m training.train --config training/configs/portrait_bisenetv2.yml

Run it again with the same config to resume from ``<run_dir>/last.pdckpt`` (or, on a
fresh clone, from the checkpoint committed at ``resume_from`` when a run had to be
carried into a later session). A new run starts from ``init_weights`` when the config
names them (e.g. a network with its ``edge_head``, ``edge_head: true``, to fine-tune both).
With ``distill: {teacher: WEIGHTS, weight: W}`` the main output also learns the teacher's
flip-averaged person probability (``training.distill``); ``freeze_bn: true`` keeps the
BatchNorm statistics as loaded (fine-tuning a trained network).
Writes ``last.pdckpt`` (model, optimizer, iteration, best score) every
``save_every`` iterations and on SIGINT/SIGTERM, ``best.pdparams`` (weights with
the best ``selection_score``) and ``train.log`` / ``val.jsonl`` in the run folder.
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
import yaml

log = logging.getLogger("training")


def load_config(path: str | Path) -> dict:
    cfg = yaml.safe_load(Path(path).read_text())
    cfg["_config_path"] = str(path)
    return cfg


def lr_at(it: int, total: int, opt_cfg: dict) -> float:
    """Linear warm-up, then polynomial decay to zero at ``total``."""
    base, warm = opt_cfg["lr"], opt_cfg["warmup_iters"]
    if it < warm:
        return base * (0.1 + 0.9 * it / warm)
    return base * (1 - (it - warm) / max(1, total - warm)) ** opt_cfg["poly_power"]


def total_iterations(stages: list) -> int:
    return sum(int(stage[0]) for stage in stages)


def current_stage(it: int, stages: list) -> list:
    """The ``[iterations, size, (augment profile)]`` entry that iteration ``it`` falls in."""
    end = 0
    for stage in stages:
        end += int(stage[0])
        if it < end:
            return stage
    return stages[-1]


def stage_size(it: int, stages: list) -> int:
    return int(current_stage(it, stages)[1])


def profile_settings(name: str, profiles: dict, seen: tuple = ()) -> dict:
    """A named profile's overrides, after those of the profile it ``extends``: augmentation
    settings, and loss settings under ``loss``."""
    if name not in profiles:
        raise ValueError(f"augment profile {name!r} is not in augment_profiles "
                         f"(it has only {sorted(profiles)}): add it to the config")
    if name in seen:
        raise ValueError(f"augment profiles extend each other in a loop: {' -> '.join((*seen, name))}")
    own = dict(profiles[name])
    base = own.pop("extends", None)
    out = profile_settings(base, profiles, (*seen, name)) if base is not None else {}
    loss = {**out.get("loss", {}), **own.pop("loss", {})}
    out.update(own)
    if loss:
        out["loss"] = loss
    return out


def _stage_profile(it: int, cfg: dict) -> dict:
    stage = current_stage(it, cfg["stages"])
    if len(stage) < 3:
        return {}
    try:
        return profile_settings(stage[2], cfg.get("augment_profiles", {}))
    except ValueError as exc:
        raise ValueError(f"stage {stage}: {exc}") from None


def stage_augment(it: int, cfg: dict) -> dict:
    """Augmentation settings at iteration ``it``: ``augment``, overridden by the stage's named profile."""
    profile = _stage_profile(it, cfg)
    profile.pop("loss", None)
    return {**cfg.get("augment", {}), **profile}


def stage_loss(it: int, cfg: dict) -> dict:
    """Loss settings at iteration ``it``: ``loss``, overridden by the ``loss`` of the stage's profile."""
    return {**cfg.get("loss", {}), **_stage_profile(it, cfg).get("loss", {})}


def check_stages(cfg: dict) -> None:
    """Fail at start, not hours in, on a stage whose profile, augmentation or loss setting is missing or misspelt."""
    import inspect

    from training.data import AugmentConfig
    from training.losses import bisenet_loss

    loss_keys = set(inspect.signature(bisenet_loss).parameters) - {"outputs", "labels", "edge"}
    start = 0
    for stage in cfg["stages"]:
        try:
            AugmentConfig(**stage_augment(start, cfg))
        except TypeError as exc:
            raise ValueError(f"stage {stage}: bad augmentation setting ({exc}); "
                             f"the known ones are those of training.data.AugmentConfig") from None
        unknown = set(stage_loss(start, cfg)) - loss_keys
        if unknown:
            raise ValueError(f"stage {stage}: unknown loss setting(s) {sorted(unknown)}; "
                             f"the known ones are {sorted(loss_keys)}")
        start += int(stage[0])


def atomic_save(obj, path: Path) -> None:
    import paddle

    tmp = path.with_suffix(path.suffix + ".tmp")
    paddle.save(obj, str(tmp))
    os.replace(tmp, path)


def rename_optimizer_state(state: dict, old_names: list[str], new_names: list[str]) -> dict:
    """Optimizer slots are keyed by parameter names, which Paddle numbers per process: map them by order."""
    if not old_names or old_names == new_names:
        return state
    if len(old_names) != len(new_names):
        raise ValueError("checkpoint was made for a different network: start a new run_dir")
    mapping = dict(zip(old_names, new_names))
    out = {}
    for key, value in state.items():
        for old in old_names:
            if key.startswith(old + "_"):
                key = mapping[old] + key[len(old):]
                break
        out[key] = value
    return out


def score_probabilities(scores, probs: np.ndarray, val, start: int) -> None:
    """Add person probabilities (any size) for ``val``'s samples ``start``, ``start + 1`` ... to
    ``scores``, each upsampled to its mask's size and thresholded at 0.5."""
    import cv2

    for p, gt, name in zip(probs, val.masks[start:start + len(probs)], val.names[start:start + len(probs)]):
        pred = cv2.resize(p, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR) > 0.5
        scores.add(name, pred, gt.astype(bool))


def check_figures(scores) -> dict:
    """A validation check's figures: the overall summary plus person IoU on eg_ and ccp_ (None if absent)."""
    out = scores.overall.summary()
    out.update({f"iou_{k[:-1]}": (scores.groups[k].summary()["person_iou"] if k in scores.groups else None)
                for k in ("eg_", "ccp_")})
    return out


def validate(model, val, size: int, batch: int = 16, room_checks=None) -> dict:
    """Person IoU (mean over images, overall and for eg_/ccp_) and 2-class mIoU, as ``training.evaluate``;
    with ``room_checks`` (``training.scenes.load_room_checks``), the held-out room figures too."""
    import cv2
    import paddle

    from training.data import to_chw_rgb
    from training.evaluate import GroupedScores
    from training.model import PersonProbability

    model.eval()
    net = PersonProbability(model)
    scores = GroupedScores()

    def probabilities(imgs) -> np.ndarray:
        x = to_chw_rgb(np.stack([cv2.resize(i, (size, size), interpolation=cv2.INTER_AREA) for i in imgs]))
        return net(paddle.to_tensor(x))[:, 0].numpy()

    with paddle.no_grad():
        for s in range(0, len(val), batch):
            score_probabilities(scores, probabilities(val.images[s:s + batch]), val, s)
        figures = check_figures(scores)
        if room_checks is not None:
            from training.scenes import room_figures

            def predict(imgs):
                return [cv2.resize(p, (i.shape[1], i.shape[0])) for p, i in zip(probabilities(imgs), imgs)]

            figures.update(room_figures(predict, *room_checks).as_dict())
    model.train()
    return figures


def selection_score(figures: dict) -> float:
    """What ``best.pdparams`` maximises: val mIoU, plus (with room checks) the pasted-people IoU
    minus the share of empty rooms called person."""
    if "pasted_iou" not in figures:
        return figures["miou"]
    return figures["miou"] + figures["pasted_iou"] - figures["room_share"]


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
    from training.distill import FlipTeacher, distill_loss
    from training.losses import bisenet_loss
    from training.model import build_model, freeze_batchnorm, load_weights, training_logits

    check_stages(cfg)
    data_root = Path(cfg["data_root"]).expanduser()
    cache_dir = Path(cfg["cache_dir"]).expanduser()
    train_set = load_portrait_set(data_root / cfg["train_list"], cache_dir, cfg["cache_long_side"])
    val_set = load_portrait_set(data_root / cfg["val_list"], cache_dir, cfg["cache_long_side"], with_plates=False)
    log.info("train %d, val %d samples; threads %s", len(train_set), len(val_set), os.environ.get("OMP_NUM_THREADS"))

    paddle.seed(cfg["seed"])
    model = build_model(edge_head=bool(cfg.get("edge_head", False)), lambd=float(cfg.get("lambd", 0.25)))
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

    teacher, distill_weight = None, 0.0
    if cfg.get("distill"):
        if not cfg["distill"].get("teacher"):
            raise ValueError("distill needs teacher: the weights to learn from (.pdparams or .pdckpt)")
        teacher = FlipTeacher(cfg["distill"]["teacher"], bool(cfg["distill"].get("flip", True)))
        distill_weight = float(cfg["distill"].get("weight", 1.0))
        log.info("distilling from %s (weight %g)", cfg["distill"]["teacher"], distill_weight)

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

    def train_mode() -> None:
        model.train()
        if cfg.get("freeze_bn"):
            freeze_batchnorm(model)

    lc = stage_loss(it, cfg)
    train_mode()
    if cfg.get("freeze_bn"):
        log.info("BatchNorm statistics frozen (freeze_bn)")
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
        if teacher is not None:
            kd = distill_loss(outs[0], teacher(x))
            loss = loss + distill_weight * kd
            parts["kd"] = float(kd)
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
            m = validate(model, val_set, size, room_checks=room_checks)
            train_mode()
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
