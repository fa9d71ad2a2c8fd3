"""What the window's parts share: the engine, the settings, and the window's services."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..engine import Engine
from ..settings import Settings


@dataclass
class WindowContext:
    engine: Engine
    settings: Settings                  # settings.engine is the engine's own settings object
    run_task: Callable[..., Any]        # run_task(fn, on_done=None, on_failed=None): fn off the GUI thread
    show_message: Callable[..., None]   # show_message(level, text, ms=8000)
    settings_changed: Callable[[], None]

    def engine_update(self, **changes: Any) -> bool:
        """Apply live engine changes; a bad value is shown, not saved."""
        try:
            self.engine.update(**changes)
        except ValueError as exc:
            self.show_message("error", str(exc))
            return False
        self.settings_changed()
        return True
