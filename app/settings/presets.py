"""Quality/speed presets: one choice a user understands, mapped to the knobs that set the app's cost.

Each preset sets the model's thread count, its most runs per second (between runs the last mask
is refined against every new frame's edges; a still picture skips runs), one pass or two (the
mirror image averaged in), the model's input size and colour-guided edges. Measured on a 2-core
machine, 640x480 at 30 fps: see ``benchmarks/bench_pipeline.py`` (every preset, or ``--preset``) and
the README.
"""
from __future__ import annotations

from typing import Any

PRESET_NAMES = ("battery", "balanced", "quality")
DEFAULT_PRESET = "balanced"   # the schema's defaults for the knobs below are this preset's
CUSTOM = "custom"             # the knobs were changed one by one and match no preset
PRESET_LABELS = {"battery": "Battery saver", "balanced": "Balanced", "quality": "Best quality", CUSTOM: "Custom"}
PRESET_HELP = {
    "battery": "less CPU than Balanced: masks 6 times a second, brightness-guided edges",
    "balanced": "masks up to 15 times a second (fewer while you sit still), each frame composited with the "
                "mask made from it or refined onto it: no trail behind a moving person; one model thread, "
                "brightness-guided edges",
    "quality": "a mask made from every frame, mirror-averaged, two model threads: the most CPU",
}
PRESETS: dict[str, dict[str, Any]] = {
    # the model's own input size: at 192 it cut the person apart (as little as 0.68 of Best quality's area)
    # async_segmentation False: a frame due a new mask waits for it (~5 ms) instead of taking the newest,
    # older one (on demo:walk the moving person's trail fell from 0.010 / 0.021 of person IoU to 0.002 /
    # 0.006 at 640x480 / 1280x720, for less CPU: benchmarks/bench_trail.py). Balanced guides edges by
    # brightness: 0.8 CPU ms a frame less at 640x480 (within the MediaPipe pipeline's cost), for an app
    # matte of person IoU 0.954 against 0.956 and boundary F 0.783 against 0.795 on the val photos.
    "battery": {"engine.threads": 1, "engine.mask_rate": 6.0, "engine.passes": 1, "engine.input_size": None,
                "engine.refine.colour_edges": False, "engine.async_segmentation": True},
    "balanced": {"engine.threads": 1, "engine.mask_rate": 15.0, "engine.passes": 1, "engine.input_size": None,
                 "engine.refine.colour_edges": False, "engine.async_segmentation": False},
    "quality": {"engine.threads": 2, "engine.mask_rate": 0.0, "engine.passes": 2, "engine.input_size": None,
                "engine.refine.colour_edges": True, "engine.async_segmentation": False},
}


def preset_of(engine_settings: Any) -> str:
    """The preset whose knobs ``engine_settings`` (an EngineSettings) holds, or CUSTOM."""
    def value(path: str) -> Any:
        obj = engine_settings
        for part in path.split(".")[1:]:
            obj = getattr(obj, part)
        return obj

    for name in PRESET_NAMES:
        if all(value(path) == v for path, v in PRESETS[name].items()):
            return name
    return CUSTOM


def preset_values(name: str) -> dict[str, Any]:
    """``{dotted field: value}`` a preset sets, with ``engine.preset`` itself."""
    if name not in PRESETS:
        raise ValueError(f"preset {name!r} must be one of {', '.join(PRESET_NAMES)}")
    return {"engine.preset": name, **PRESETS[name]}
