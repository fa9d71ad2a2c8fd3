"""Settings files: JSON in the user's config folder (GUI) or given with --config (headless)."""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from inference.refine import RefineSettings

from .engine import EngineSettings

log = logging.getLogger(__name__)


def user_config_dir() -> Path:
    from platformdirs import user_config_dir as _ucd

    return Path(_ucd("bgswap", appauthor=False))


def settings_to_dict(s: EngineSettings) -> dict:
    return dataclasses.asdict(s)


def settings_from_dict(d: dict, base: EngineSettings | None = None) -> EngineSettings:
    """Apply known keys of ``d`` onto ``base`` (unknown keys are ignored with a warning)."""
    s = dataclasses.replace(base) if base is not None else EngineSettings()
    s.refine = dataclasses.replace(s.refine)
    engine_fields = {f.name for f in dataclasses.fields(EngineSettings)}
    refine_fields = {f.name for f in dataclasses.fields(RefineSettings)}
    for key, value in d.items():
        if key == "refine" and isinstance(value, dict):
            for rk, rv in value.items():
                if rk in refine_fields:
                    setattr(s.refine, rk, rv)
                else:
                    log.warning("ignoring unknown setting refine.%s", rk)
        elif key in engine_fields:
            setattr(s, key, value)
        else:
            log.warning("ignoring unknown setting %s", key)
    return s


def load_settings_file(path: str | Path, base: EngineSettings | None = None) -> EngineSettings:
    """Read a JSON settings file; ValueError names the file and the problem."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"config file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"config file {path} is not valid JSON: {exc}") from None
    if not isinstance(d, dict):
        raise ValueError(f"config file {path} must hold a JSON object")
    return settings_from_dict(d, base)


def save_settings_file(s: EngineSettings, path: str | Path, extra: dict | None = None) -> None:
    """Write atomically so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    d = settings_to_dict(s)
    if extra:
        d.update(extra)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(d, indent=2) + "\n")
    tmp.replace(path)
