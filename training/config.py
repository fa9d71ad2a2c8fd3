"""Training configs: YAML files that inherit a ``_base_``, their stages, augmentation profiles and lr schedule."""
from __future__ import annotations

from pathlib import Path

import yaml


def merge_config(base: dict, override: dict) -> dict:
    """``base`` with ``override``'s keys: nested dicts merge key by key, other values replace."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge_config(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


def load_config(path: str | Path, _seen: tuple = ()) -> dict:
    """A training config, on top of the config its ``_base_`` names (relative to it), as PaddleSeg's do."""
    path = Path(path)
    if path.resolve() in _seen:
        raise ValueError(f"config {path} inherits from itself through _base_")
    cfg = yaml.safe_load(path.read_text()) or {}
    base = cfg.pop("_base_", None)
    if base is not None:
        cfg = merge_config(load_config(path.parent / base, (*_seen, path.resolve())), cfg)
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
