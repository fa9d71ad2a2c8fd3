"""Can Qt's X11 platform plugin load? Checked before the window's QApplication exists.

Without one of the X11 libraries the ``xcb`` plugin links to, Qt aborts the process (exit 134) with a
message that asks for ``libxcb-cursor0`` whatever is missing. The plugin is loaded here first the way
Qt loads it (``dlopen``, which resolves its libraries), so a missing one becomes a message with the
README's apt line and exit 1 instead.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from pathlib import Path

# The README's line (Requirements); tests/test_gui.py checks that the two agree.
APT_PACKAGES = ("libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 "
                "libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xfixes0 libegl1 libgl1 libfontconfig1 "
                "libdbus-1-3")
APT_LINE = f"sudo apt install {APT_PACKAGES}"
RUNTIME_LIBS = ("libxcb-cursor.so.0",)     # loaded by the plugin at run time (Qt 6.5+ refuses to start without it)


def uses_xcb(env: "os._Environ[str] | dict[str, str]" = os.environ) -> bool:
    """Whether Qt will try the xcb plugin: on Linux, asked for, or by default on an X11 display."""
    if not sys.platform.startswith("linux"):
        return False
    asked = env.get("QT_QPA_PLATFORM", "")
    if asked:
        return asked.split(";")[0].split(":")[0] == "xcb"
    return bool(env.get("DISPLAY")) and not env.get("WAYLAND_DISPLAY")


def xcb_plugin() -> Path | None:
    """PySide6's ``libqxcb.so``, or None (another Qt build: Qt itself will say what is wrong)."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    plugin = Path(list(spec.submodule_search_locations)[0]) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def _missing(lib: str) -> str | None:
    try:
        ctypes.CDLL(lib)
    except OSError as exc:
        text = str(exc)
        name = text.split(":", 1)[0].strip()
        return name if name and "/" not in name else text
    return None


def platform_problem(env: "os._Environ[str] | dict[str, str]" = os.environ) -> str | None:
    """A message naming the missing library and the apt line that installs them all, or None."""
    if not uses_xcb(env):
        return None
    plugin = xcb_plugin()
    if plugin is None:
        return None
    missing = next((m for m in (_missing(str(plugin)), *map(_missing, RUNTIME_LIBS)) if m), None)
    if missing is None:
        return None
    what = (f"needs {missing}, which is not installed" if " " not in missing and "/" not in missing
            else f"cannot be loaded ({missing})")
    return (f"bgswap: the window cannot start: Qt's X11 plugin {what}. "
            f"Install the X11 libraries Qt uses with:\n    {APT_LINE}\n"
            "(or run without a window: bgswap --no-gui --virtual-cam)")
