"""The Linux application-menu entry: ``bgswap --install-desktop-entry [--autostart]`` /
``--uninstall-desktop-entry``.

Writes a freedesktop ``.desktop`` file to ``~/.local/share/applications`` and the icon to
``~/.local/share/icons/hicolor/256x256/apps`` (``$XDG_DATA_HOME`` when set); the entry starts this
same Python's ``bgswap``, so it keeps working inside a virtual environment. ``--autostart`` adds an
XDG autostart entry (``~/.config/autostart``, ``$XDG_CONFIG_HOME`` when set) that starts it in the
tray at login.
"""
from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from bgswap.inference.resources import assets_dir

APP_ID = "bgswap"


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def entry_path() -> Path:
    return data_home() / "applications" / f"{APP_ID}.desktop"


def autostart_path() -> Path:
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "autostart" / f"{APP_ID}.desktop"


def icon_path() -> Path:
    return data_home() / "icons" / "hicolor" / "256x256" / "apps" / f"{APP_ID}.png"


def desktop_entry_text(tray: bool = False) -> str:
    """The entry; ``tray``: it starts the app in the tray (the login entry)."""
    command = " ".join(shlex.quote(part) for part in (sys.executable, "-m", "bgswap.app.cli",
                                                      *(["--tray"] if tray else [])))
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Name=BgSwap",
        "GenericName=Background replacement",
        "Comment=Replace your webcam background and publish it as a virtual camera",
        f"Exec={command}",
        f"Icon={APP_ID}",
        "Terminal=false",
        "Categories=AudioVideo;Video;",
        "Keywords=webcam;background;virtual camera;blur;",
        "StartupWMClass=BgSwap",
        *(["X-GNOME-Autostart-enabled=true"] if tray else []),
        "",
    ])


def install(autostart: bool = False) -> list[Path]:
    """Write the entry and its icon (and, with ``autostart``, the login entry); returns the files written."""
    entry, icon = entry_path(), icon_path()
    entry.parent.mkdir(parents=True, exist_ok=True)
    icon.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(assets_dir() / "icons" / f"{APP_ID}.png", icon)
    entry.write_text(desktop_entry_text())
    entry.chmod(0o755)
    written = [entry, icon]
    if autostart:
        login = autostart_path()
        login.parent.mkdir(parents=True, exist_ok=True)
        login.write_text(desktop_entry_text(tray=True))
        written.append(login)
    return written


def uninstall() -> list[Path]:
    """Remove the entry and its icon; returns the files removed."""
    removed = []
    for path in (entry_path(), icon_path(), autostart_path()):
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed
