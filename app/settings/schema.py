"""Every setting a user can make, with its default and its valid values, and the one checker for them.

Three groups: ``EngineSettings`` (what the picture is made from), ``OutputSettings`` (where it goes and
for how long) and ``GuiSettings`` (what the window remembers). A field's valid values are in its
``metadata``: ``range`` (inclusive), ``choices`` or ``check`` (a function returning a problem or None).
``check_settings`` walks the dataclasses, checks types and those rules, and names the field in its error.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from bgswap.inference.backends import BACKENDS, COMPUTE_TARGETS, PRECISIONS
from bgswap.inference.background_spec import (BLUR_RANGE, DEFAULT_BLUR, DEFAULT_COLOR, BackgroundError, BackgroundSpec,
                                               parse_color)
from bgswap.inference.refine import RefineSettings
from bgswap.inference.resources import SHIPPED_MODELS, backgrounds_dir
from bgswap.inference.model_meta import input_size_problem

from .presets import CUSTOM, DEFAULT_PRESET, PRESET_NAMES, PRESETS

DEFAULT_BACKGROUND = str(backgrounds_dir() / "evening_bokeh.jpg")


class SettingsError(ValueError):
    """A setting has a wrong type or value; the message names the setting and what it accepts."""


def _background_problem(value: str) -> str | None:
    try:
        BackgroundSpec.parse(value)
    except BackgroundError as exc:
        return str(exc)
    return None


def _color_problem(value: str) -> str | None:
    try:
        parse_color(value)
    except BackgroundError as exc:
        return str(exc)
    return None


def _input_size_problem(value: int | None) -> str | None:
    return None if value is None else input_size_problem(value)


def _preset_default(name: str) -> Any:
    """The default preset's value of an engine knob (presets.PRESETS is its one home)."""
    return PRESETS[DEFAULT_PRESET][f"engine.{name}"]


def _not_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


LIVE, MODEL, RESTART = "live", "model", "restart"   # how a changed setting reaches a running engine


def rule(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
         persist: bool = True, change: str = LIVE, **meta: Any) -> Any:
    """A dataclass field with its valid values; ``persist=False`` keeps it out of saved settings.
    ``change``: how a new value reaches a running engine (``Engine.apply``): LIVE (at once), MODEL
    (the model is built anew, off the frame path) or RESTART (at the next start)."""
    if change not in (LIVE, MODEL, RESTART):
        raise ValueError(f"change must be {LIVE!r}, {MODEL!r} or {RESTART!r}, not {change!r}")
    meta["persist"], meta["change"] = persist, change
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class EngineSettings:
    """What the picture is made from; each field's ``change`` says how a new value reaches a running
    engine (``Engine.apply``; a new source goes through ``Engine.set_source``)."""

    source: str = rule("demo", check=_not_empty, change=RESTART)
    width: int = rule(640, range=(16, 7680), change=RESTART)
    height: int = rule(480, range=(16, 4320), change=RESTART)
    fps: float = rule(30.0, range=(1, 240), change=RESTART)
    background: str = rule(DEFAULT_BACKGROUND, check=_background_problem)
    mirror: bool = rule(False)
    async_segmentation: bool = rule(_preset_default("async_segmentation"))
    model_dir: str | None = rule(None, change=MODEL)
    model: str = rule("auto", choices=("auto", *SHIPPED_MODELS), change=MODEL)   # without model_dir: auto = by where it runs
    backend: str = rule("auto", choices=BACKENDS, change=MODEL)
    compute: str = rule("auto", choices=COMPUTE_TARGETS, change=MODEL)        # where the model runs
    tensorrt: bool = rule(False, change=MODEL)                               # TensorRT fp16 for Paddle on a CUDA GPU
    input_size: int | None = rule(_preset_default("input_size"), check=_input_size_problem, change=MODEL)   # None: meta.json's
    threads: int = rule(_preset_default("threads"), range=(1, 64), change=MODEL)   # model threads
    precision: str = rule("auto", choices=PRECISIONS, change=MODEL)          # auto: int8 on the CPU when the model has it
    preset: str = rule(DEFAULT_PRESET, choices=(*PRESET_NAMES, CUSTOM))   # the preset the knobs below match
    mask_rate: float = rule(_preset_default("mask_rate"), range=(0, 240))             # model runs per second at most; 0 = every frame
    passes: int = rule(_preset_default("passes"), range=(1, 2), change=MODEL)                       # 2: the mirror image too, averaged
    realtime: bool = rule(True, persist=False, change=RESTART)                # pace files and the demo at their frame rate
    auto_frame: bool = rule(False)                             # digital pan and zoom that keeps the person centred
    refine: RefineSettings = rule(default_factory=lambda: RefineSettings(colour_edges=_preset_default("refine.colour_edges")))

    def validate(self) -> "EngineSettings":
        check_settings(self, "engine")
        return self


def fields_that_change(cls: type, kind: str) -> frozenset[str]:
    """The names of ``cls``'s fields whose ``rule(change=...)`` is ``kind``."""
    return frozenset(f.name for f in dataclasses.fields(cls) if f.metadata.get("change", LIVE) == kind)


@dataclass
class OutputSettings:
    """Where the picture goes: the virtual camera (remembered), and a recording and run length (per run)."""

    virtual_camera: bool = rule(False)
    vcam_device: str | None = rule(None)          # e.g. /dev/video2; None: the first that works
    vcam_backend: str | None = rule(None)         # pyvirtualcam backend name; None: any that works
    output: str | None = rule(None, persist=False, check=_not_empty)
    overwrite: bool = rule(False, persist=False)
    frames: int | None = rule(None, persist=False, range=(1, 10**9))
    duration: float | None = rule(None, persist=False, range=(1e-3, 1e7))
    stats_every: float = rule(5.0, persist=False, range=(0.1, 86400))


@dataclass
class GuiSettings:
    """What the window remembers between runs."""

    user_backgrounds: list[str] = rule(default_factory=list)
    blur_strength: int = rule(DEFAULT_BLUR, range=BLUR_RANGE)
    color: str = rule(DEFAULT_COLOR, check=_color_problem)
    show_stats: bool = rule(False)                # the tuning readout over the preview (S)
    preview_mirror: bool = rule(False)
    geometry: str = rule("")                      # QMainWindow.saveGeometry(), base64
    tray_hint_shown: bool = rule(False)           # "still running in the tray" has been said once


@dataclass
class Settings:
    engine: EngineSettings = field(default_factory=EngineSettings)
    outputs: OutputSettings = field(default_factory=OutputSettings)
    gui: GuiSettings = field(default_factory=GuiSettings)

    def validate(self) -> "Settings":
        check_settings(self, "")
        return self


SECTIONS = tuple(f.name for f in dataclasses.fields(Settings))


# ---- checking ----------------------------------------------------------------------------------
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def type_problem(value: Any, hint: Any) -> str | None:
    """Why ``value`` does not fit the annotation ``hint`` (None when it does)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        problems = [type_problem(value, a) for a in args if a is not type(None)]
        return None if None in problems else problems[0]
    if origin is list:
        if not isinstance(value, list):
            return f"{value!r} is not a list"
        (item,) = typing.get_args(hint)
        bad = [type_problem(v, item) for v in value]
        return next((p for p in bad if p), None)
    if hint is bool:
        return None if isinstance(value, bool) else f"{value!r} is not true or false"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else f"{value!r} is not a whole number"
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else f"{value!r} is not a number"
    if hint is str:
        return None if isinstance(value, str) else f"{value!r} is not text"
    if dataclasses.is_dataclass(hint):
        return None if isinstance(value, hint) else f"{value!r} is not a group of settings"
    return None


def value_problem(value: Any, meta: typing.Mapping[str, Any]) -> str | None:
    """Why ``value`` breaks the field's ``range`` / ``choices`` / ``check`` rule (None when it keeps it)."""
    if value is None:
        return None
    if "range" in meta:
        lo, hi = meta["range"]
        if not lo <= value <= hi:
            shown = f"{value:g}" if isinstance(value, float) else repr(value)
            return f"{shown} must be between {lo:g} and {hi:g}"
    if "choices" in meta and value not in meta["choices"]:
        return f"{value!r} must be one of {', '.join(meta['choices'])}"
    if "check" in meta:
        return meta["check"](value)
    return None


def field_problem(obj: Any, name: str) -> str | None:
    """Type or value problem of one field of a settings dataclass."""
    f = next(f for f in dataclasses.fields(obj) if f.name == name)
    value = getattr(obj, name)
    return type_problem(value, _hints(type(obj))[name]) or value_problem(value, f.metadata)


def check_settings(obj: Any, prefix: str) -> None:
    """Raise SettingsError naming the first field (``engine.fps``) whose type or value is wrong."""
    for f in dataclasses.fields(obj):
        path = f"{prefix}.{f.name}" if prefix else f.name
        problem = field_problem(obj, f.name)
        if problem:
            raise SettingsError(f"setting {path}: {problem}")
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            check_settings(value, path)
            if isinstance(value, RefineSettings):
                try:
                    value.validate()
                except ValueError as exc:
                    raise SettingsError(f"setting {path}: {exc}") from None
