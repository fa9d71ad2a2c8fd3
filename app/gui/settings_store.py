"""What the GUI remembers between runs: engine settings, user backgrounds, window geometry."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config import save_settings_file, settings_from_dict, settings_to_dict, user_config_dir
from ..engine import EngineSettings

log = logging.getLogger(__name__)


def config_path() -> Path:
    """``$BGSWAP_CONFIG_DIR/settings.json``, else the user config folder."""
    base = os.environ.get("BGSWAP_CONFIG_DIR")
    return (Path(base) if base else user_config_dir()) / "settings.json"


@dataclass
class GuiSettings:
    engine: EngineSettings = field(default_factory=EngineSettings)
    user_backgrounds: list[str] = field(default_factory=list)
    blur_strength: int = 15
    color: str = "#2E8B57"
    virtual_camera: bool = False
    vcam_device: str | None = None
    vcam_backend: str | None = None      # pyvirtualcam backend name; None = any that works
    show_stats: bool = True
    preview_mirror: bool = False
    geometry: str = ""                   # QMainWindow.saveGeometry(), base64


def load_gui_settings(path: Path | None = None) -> GuiSettings:
    """Saved settings, or defaults when there are none; a damaged file is reported and ignored."""
    from ..sources import default_source

    path = path or config_path()
    gs = GuiSettings()
    if not path.is_file():
        gs.engine.source = default_source()    # first run: the webcam, or the demo without one
        return gs
    try:
        d = json.loads(path.read_text())
        gui = d.pop("gui", {})
        gs.engine = settings_from_dict(d)
        for f in dataclasses.fields(GuiSettings):
            if f.name != "engine" and f.name in gui:
                setattr(gs, f.name, gui[f.name])
        gs.engine.validate()
    except (ValueError, TypeError, AttributeError) as exc:
        log.warning("settings file %s is damaged (%s): using defaults", path, exc)
        return GuiSettings()
    return gs


def save_gui_settings(gs: GuiSettings, path: Path | None = None) -> None:
    gui = {f.name: getattr(gs, f.name) for f in dataclasses.fields(GuiSettings) if f.name != "engine"}
    save_settings_file(gs.engine, path or config_path(), extra={"gui": gui})


__all__ = ["GuiSettings", "load_gui_settings", "save_gui_settings", "config_path", "settings_to_dict"]
