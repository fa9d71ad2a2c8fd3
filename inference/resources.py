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
MODEL_NAME = "portrait_bisenetv2"


def _data_dir(name: str) -> Path:
    try:
        return Path(str(importlib.resources.files(f"bgswap.{name}")))
    except ModuleNotFoundError:          # a checkout run without installing
        return SOURCE_ROOT / name


def models_dir() -> Path:
    """The folder holding the shipped model folders and the model card."""
    return _data_dir("models")


def default_model_dir() -> Path:
    """The shipped model's folder (``meta.json``, ``model.onnx`` ...)."""
    return models_dir() / MODEL_NAME


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
