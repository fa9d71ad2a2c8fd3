"""Settings to and from plain dicts (JSON), checking every value on the way in.

A dict may be sectioned (``{"engine": {...}, "outputs": {...}, "gui": {...}}``, what the app saves) or
the short form a hand-written ``--config`` file uses: engine fields at the top level. Files from
before the sections existed (engine fields at the top, the virtual camera under ``gui``, the model's
``device``) are read as they were meant.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import logging
from typing import Any

from bgswap.inference.refine import RefineSettings

from .schema import SECTIONS, EngineSettings, OutputSettings, Settings, SettingsError, field_problem

log = logging.getLogger(__name__)

_ENGINE_FIELDS = {f.name for f in dataclasses.fields(EngineSettings)}
_MOVED = {"device": ("engine", "compute")} | {
    name: ("outputs", name) for name in ("virtual_camera", "vcam_device", "vcam_backend")}


def to_dict(settings: Settings, persisted_only: bool = True) -> dict[str, Any]:
    """Nested plain dict; with ``persisted_only`` the per-run fields (``persist=False``) are left out."""
    def walk(obj: Any) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(obj):
            if persisted_only and not f.metadata.get("persist", True):
                continue
            value = getattr(obj, f.name)
            out[f.name] = walk(value) if dataclasses.is_dataclass(value) else copy.deepcopy(value)
        return out
    return walk(settings)


def _sectioned(d: dict[str, Any]) -> dict[str, Any]:
    """The dict in sections, with old and short forms moved to where they belong now."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        if key in SECTIONS and isinstance(value, dict):
            for k, v in value.items():
                sec, name = _MOVED.get(k, (key, k)) if key != "outputs" else (key, k)
                out.setdefault(sec, {})[name] = v
        elif key in _MOVED:
            sec, name = _MOVED[key]
            out.setdefault(sec, {})[name] = value
        elif key in _ENGINE_FIELDS:
            out.setdefault("engine", {})[key] = value
        else:
            out.setdefault("_unknown", {})[key] = value
    return out


def _apply(obj: Any, values: dict[str, Any], prefix: str, strict: bool, problems: list[str]) -> None:
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in values.items():
        path = f"{prefix}.{key}"
        if key not in names:
            _unknown(path, [f"{prefix}.{n}" for n in names], strict)
            continue
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if isinstance(value, dict):
                _apply(current, value, path, strict, problems)
                continue
            problem = f"{value!r} is not a group of settings"
        else:
            setattr(obj, key, value)
            problem = field_problem(obj, key)
            if problem is None and isinstance(obj, RefineSettings):
                try:
                    obj.validate()
                except ValueError as exc:
                    problem = str(exc)
            if problem:
                setattr(obj, key, current)
        if problem:
            message = f"setting {path}: {problem}"
            if strict:
                raise SettingsError(message)
            problems.append(message)


LEGACY_KEYS = frozenset(_ENGINE_FIELDS) | frozenset(_MOVED)     # top-level keys read into their section


def _unknown(path: str, known: list[str], strict: bool) -> None:
    """A key no setting has: an error in a ``--config`` file (strict), a warning in the GUI's file
    (whose unknown keys are kept on save, for a newer version that knows them)."""
    close = difflib.get_close_matches(path, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    if strict:
        raise SettingsError(f"unknown setting {path}{hint}")
    log.warning("ignoring unknown setting %s%s", path, hint)


def from_dict(d: Any, base: Settings | None = None, strict: bool = True) -> tuple[Settings, list[str]]:
    """``base`` (or defaults) with ``d``'s values applied. Strict: the first bad value raises
    SettingsError. Lenient: bad values keep the base's and are returned as problems."""
    if not isinstance(d, dict):
        raise SettingsError(f"settings must be a JSON object, not {type(d).__name__}")
    settings = copy.deepcopy(base) if base is not None else Settings()
    problems: list[str] = []
    for section in SECTIONS:
        if section in d and not isinstance(d[section], dict):
            message = f"setting {section}: {d[section]!r} is not a group of settings"
            if strict:
                raise SettingsError(message)
            problems.append(message)
    for section, values in _sectioned(d).items():
        if section == "_unknown":
            for key in values:
                _unknown(key, [*SECTIONS, *_ENGINE_FIELDS], strict)
            continue
        _apply(getattr(settings, section), values, section, strict, problems)
    return settings, problems


def get_path(settings: Settings, path: str) -> Any:
    obj: Any = settings
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def set_path(settings: Settings, path: str, value: Any) -> None:
    """Set one field by its dotted path, checking it; SettingsError names the path."""
    *parents, name = path.split(".")
    obj: Any = settings
    for part in parents:
        obj = getattr(obj, part)
    _apply(obj, {name: value}, ".".join(parents), True, [])


def engine_with(engine: EngineSettings, values: dict[str, Any]) -> EngineSettings:
    """A copy of ``engine`` with ``values`` (dotted paths from ``engine.``, as presets give them) set and
    checked."""
    holder = Settings(engine=copy.deepcopy(engine))
    for path, value in values.items():
        set_path(holder, path, value)
    return holder.engine


__all__ = ["to_dict", "from_dict", "get_path", "set_path", "engine_with", "EngineSettings", "OutputSettings"]
