"""Where the bundled data lives: the model folder and the assets (backgrounds, demo photo).

Installed (``pip install .``, a wheel, pipx), they are package data of ``bgswap.models`` and
``bgswap.assets``, found through ``importlib.resources``; the source tree's ``models/`` and
``assets/`` are those packages (``pyproject.toml`` maps them), so an editable install and a plain
checkout find the same folders.
"""
from __future__ import annotations

import importlib.resources
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent
CPU_MODEL = "portrait_mobileseg"    # v5: PP-HumanSegV2-Lite's network, distilled here (models/MODEL_CARD.md)
GPU_MODEL = "portrait_bisenetv2"    # BiSeNetV2: the design's GPU predictor
SHIPPED_MODELS = (CPU_MODEL, GPU_MODEL)


def _data_dir(name: str) -> Path:
    try:
        return Path(str(importlib.resources.files(f"bgswap.{name}")))
    except ModuleNotFoundError:          # a checkout run without installing
        return SOURCE_ROOT / name


def models_dir() -> Path:
    """The folder holding the shipped model folders and the model card."""
    return _data_dir("models")


def default_model_dir(gpu: bool = False) -> Path:
    """The folder (``meta.json``, ``model.onnx`` ...) of the shipped model that runs by default on the CPU,
    or with ``gpu`` on a GPU."""
    return models_dir() / (GPU_MODEL if gpu else CPU_MODEL)


def shipped_model_dir(name: str) -> Path:
    """The folder of the shipped model called ``name`` (one of ``SHIPPED_MODELS``)."""
    if name not in SHIPPED_MODELS:
        raise ValueError(f"model {name!r} is not shipped: use one of {', '.join(SHIPPED_MODELS)}")
    return models_dir() / name


def assets_dir() -> Path:
    """The folder holding ``backgrounds/`` and ``demo/``."""
    return _data_dir("assets")


def backgrounds_dir() -> Path:
    return assets_dir() / "backgrounds"


def bundled_backgrounds() -> list[Path]:
    """The shipped background images and videos, sorted by name."""
    from .media import is_media_file

    folder = backgrounds_dir()
    return sorted(p for p in folder.iterdir() if is_media_file(p)) if folder.is_dir() else []
