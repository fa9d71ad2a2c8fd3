"""Command line: ``bgswap`` / ``python main.py`` (GUI) and ``--no-gui`` (headless)."""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from typing import Any

from bgswap import __version__

from .signals import SignalCatcher
from .settings import Settings, SettingsError, SettingsStore, load_config_file, to_dict
from .settings.cli_options import add_options, apply_options
from .settings.files import flatten

log = logging.getLogger("bgswap")

HEADLESS_ONLY = ("outputs.output", "outputs.frames", "outputs.duration")
SERVE_INSTALL = 'pip install "bgswap[serve]"'
SERVE_MODULES = ("fastapi", "starlette", "uvicorn", "prometheus_client", "redis", "multipart", "python_multipart")


def _display_available() -> bool:
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM", "").split(":")[0] in ("offscreen", "minimal", "vnc"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class OneLineErrors(argparse.ArgumentParser):
    """Mistakes are one line naming the problem (the usage is 15 lines: ``--help`` shows it)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (bgswap --help lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineErrors(prog="bgswap", description="Real-time webcam background replacement. "
                                "'bgswap serve --help' and 'bgswap worker --help': the HTTP service.")
    p.add_argument("--version", action="version", version=f"bgswap {__version__}")
    p.add_argument("--no-gui", action="store_true", help="run headless (kiosks, servers)")
    add_options(p)
    p.add_argument("--config", metavar="FILE", help="JSON settings file (command-line options win); for the window, for this run only")
    p.add_argument("--tray", action="store_true",
                   help="start in the system tray: its icon's menu switches the camera and background, and opens "
                        "the window")
    p.add_argument("--install-desktop-entry", action="store_true",
                   help="add BgSwap to the Linux application menu (~/.local/share/applications) and exit")
    p.add_argument("--autostart", action="store_true",
                   help="with --install-desktop-entry: also start BgSwap in the tray at login")
    p.add_argument("--uninstall-desktop-entry", action="store_true",
                   help="remove the menu entry (and the login entry) and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="log debugging detail too")
    return p


def _changed_paths(before: Settings, after: Settings) -> dict[str, Any]:
    old, new = flatten(to_dict(before, False)), flatten(to_dict(after, False))
    return {p: v for p, v in new.items() if old.get(p) != v}


def resolve_settings(args: argparse.Namespace, store: SettingsStore | None) -> tuple[Settings, dict[str, Any]]:
    """Settings for this run and the fields set for this run only (``--config`` and options): the
    window's saved settings (``store``) or defaults, then ``--config``, then the options."""
    from .sources import default_source

    if store is not None:
        first_run = not store.path.exists()
        base = store.load()
    else:
        first_run, base = True, Settings()
    if first_run:
        base.engine.source = default_source()   # the webcam, or the demo without one
    session: dict[str, Any] = {}
    if args.config:
        configured = load_config_file(args.config, base)
        session.update(_changed_paths(base, configured))
        base = configured
    settings, given = apply_options(base, args)
    session.update(given)
    if "engine.width" not in session:           # a file source's own size, unless a size was asked for
        from .sources import natural_size

        size = natural_size(settings.engine.source)
        if size is not None and size != (settings.engine.width, settings.engine.height):
            settings.engine.width, settings.engine.height = size
            session.update({"engine.width": size[0], "engine.height": size[1]})   # this run's, not saved
    return settings, session


def file_problem(args: argparse.Namespace, session: dict[str, Any], settings: Settings) -> str | None:
    """A ``--source`` or ``--background`` file (or one a ``--config`` file names) that does not exist:
    said before anything slow starts, as other bad values are. Saved settings are not checked here: the
    window shows a file that went missing."""
    from bgswap.inference.background_spec import BackgroundSpec

    from .sources import source_file

    e = settings.engine
    spec = BackgroundSpec.parse(e.background)
    for flag, path, value in (("--source", "engine.source", source_file(e.source)),
                              ("--background", "engine.background", spec.path)):
        if path not in session or value is None or value.exists():
            continue
        if getattr(args, "opt_" + flag[2:], None) is not None:
            return f"{flag}: {value} does not exist"
        return f"setting {path}: {value} does not exist (in {args.config})"
    return None


def _serve(argv: list[str]) -> int:
    """``bgswap serve`` / ``bgswap worker``; without the serve extra, one line saying how to install it."""
    missing = None
    if not {"-h", "--help"} & set(argv[1:]):
        broker = argv[0] == "worker" or any(a == "--broker" or a.startswith("--broker=") for a in argv)
        needed = ("fastapi", "uvicorn", "prometheus_client") if argv[0] == "serve" else ()
        missing = next((m for m in (*needed, *(("redis",) if broker else ())) if importlib.util.find_spec(m) is None),
                       None)
    if missing is None:
        from .serve.cli import main as serve_main

        try:
            return serve_main(argv)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in SERVE_MODULES:
                raise
            missing = exc.name.split(".")[0]
    print(f"bgswap {argv[0]}: the HTTP service needs the serve extra (no module {missing!r}): {SERVE_INSTALL}",
          file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("serve", "worker"):
        return _serve(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.install_desktop_entry or args.uninstall_desktop_entry:
        from . import desktop_entry

        files = (desktop_entry.install(autostart=args.autostart) if args.install_desktop_entry
                 else desktop_entry.uninstall())
        for path in files:
            print(("installed " if args.install_desktop_entry else "removed ") + str(path))
        return 0
    if args.no_gui:
        return _headless(parser, args)
    # Everything that can refuse the run is checked before the settings folder is touched (a refused
    # run leaves nothing there): the options and --config over the defaults, files, the display, Qt.
    try:
        checked, session = resolve_settings(args, None)
    except SettingsError as exc:
        parser.error(str(exc))
    given = [p for p in HEADLESS_ONLY if p in session]
    if given:
        parser.error(f"{', '.join('--' + p.split('.')[1] for p in given)} record a headless run: add --no-gui")
    problem = file_problem(args, session, checked)
    if problem:
        parser.error(problem)
    if not _display_available():
        log.error("no display found for the window: run with --no-gui (e.g. --no-gui --virtual-cam), "
                  "or start it from a desktop session")
        return 2
    from .qt_platform import platform_problem

    problem = platform_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    store = SettingsStore()
    try:
        settings, session = resolve_settings(args, store)
    except SettingsError as exc:
        parser.error(str(exc))
    from .gui.main_window import run_gui

    return run_gui(settings, store, session, in_tray=args.tray)


def _headless(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    signals = SignalCatcher(reload=True).install()    # before anything slow: a signal never gives a traceback
    try:
        try:
            settings, session = resolve_settings(args, None)
        except SettingsError as exc:
            parser.error(str(exc))
        problem = file_problem(args, session, settings)
        if problem:
            parser.error(problem)
        from .headless import run_headless

        return run_headless(settings, signals, (lambda: resolve_settings(args, None)[0]) if args.config else None)
    finally:
        signals.restore()


if __name__ == "__main__":
    sys.exit(main())
