"""Saving training state atomically and loading optimizer state across processes."""
from __future__ import annotations

import os
from pathlib import Path


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
