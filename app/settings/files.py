"""Settings files: a ``--config`` file read strictly, and the GUI's own file kept safe.

The GUI's file (``settings.json`` in the user's config folder, or ``$BGSWAP_CONFIG_DIR``):
- read leniently: a damaged file or a bad value is reported, kept as ``settings.json.bad``, and the
  rest of the settings (or the defaults) are used; the app always starts;
- written atomically under a lock (a unique temporary file, flushed, then renamed), so neither a crash
  nor a second window leaves half a file;
- merged on save: only what this window changed is written over what is on disk now, so two windows
  do not undo each other, and values that came from the command line are not saved.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .convert import LEGACY_KEYS, from_dict, get_path, to_dict
from .schema import Settings, SettingsError

log = logging.getLogger(__name__)

FILE_NAME = "settings.json"
MAX_BYTES = 1024 * 1024         # a settings file is a few kB: anything over this is not one
_MISSING = object()


def user_config_dir() -> Path:
    """``$BGSWAP_CONFIG_DIR``, else the platform's config folder for bgswap."""
    base = os.environ.get("BGSWAP_CONFIG_DIR")
    if base:
        return Path(base)
    from platformdirs import user_config_dir as _ucd

    return Path(_ucd("bgswap", appauthor=False))


def config_path() -> Path:
    return user_config_dir() / FILE_NAME


def _read_json(path: Path) -> Any:
    """The JSON in ``path``: SettingsError for anything but a regular file of at most MAX_BYTES holding
    JSON (a FIFO or a device would block or never end; nesting past Python's limit is damage too)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise SettingsError(f"settings file {path} does not exist") from None
    except OSError as exc:
        raise SettingsError(f"settings file {path} cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise SettingsError(f"settings file {path} is not a regular file")
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise SettingsError(f"settings file {path} is over {MAX_BYTES // 1024} kB: not a settings file")
    try:
        return json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"settings file {path} is not valid JSON ({exc})") from None
    except RecursionError:
        raise SettingsError(f"settings file {path} is nested too deeply to be settings") from None


def load_config_file(path: str | Path, base: Settings | None = None) -> Settings:
    """A ``--config`` file over ``base``: any problem raises SettingsError naming the file and setting."""
    path = Path(path)
    try:
        settings, _ = from_dict(_read_json(path), base, strict=True)
    except SettingsError as exc:
        raise SettingsError(f"{exc} (in {path})" if str(path) not in str(exc) else str(exc)) from None
    return settings


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, name = path.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[name] = value
    return out


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path.lock`` (advisory; a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:       # Windows: the atomic rename still protects the file
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "r+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _replace_atomically(path: Path, write) -> None:
    """``write(f)`` into a unique temporary file beside ``path`` (binary), flush it to disk, then rename it
    over ``path``: a crash leaves the old file or the new one, and a link at ``path`` is replaced, never
    written through."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """``data`` as JSON over ``path`` atomically (over the file a symlinked ``path`` points to: the link
    stays a link)."""
    if path.is_symlink():
        path = path.resolve()
    _replace_atomically(path, lambda f: f.write((json.dumps(data, indent=2) + "\n").encode("utf-8")))


def _copy_safely(src: Path, dst: Path) -> None:
    """Copy ``src`` (a regular file) to ``dst`` through a fresh temporary file and a rename: a link planted
    at ``dst`` is replaced, never written through."""
    with open(src, "rb") as source:
        _replace_atomically(dst, lambda f: shutil.copyfileobj(source, f))


class SettingsStore:
    """The GUI's settings file: lenient load with a backup of what was damaged, merged atomic saves."""

    def __init__(self, path: Path | None = None):
        self.path = path or config_path()
        self._baseline: dict[str, Any] = {}     # flat persisted settings as last read or written
        self.problems: list[str] = []

    @property
    def backup_path(self) -> Path:
        return self.path.with_name(self.path.name + ".bad")

    @staticmethod
    def _unknown_in(raw: Any) -> dict[str, Any]:
        """The settings in ``raw`` (the file's JSON) that this version does not know (flat), to be
        written back as they were."""
        if not isinstance(raw, dict):
            return {}
        known = flatten(to_dict(Settings()))
        sections = {p.split(".")[0] for p in known}

        def unknown(path: str) -> bool:      # not a setting, nor an old top-level form of one, nor a damaged group
            top = path.split(".")[0]
            if path in known or any(k.startswith(path + ".") for k in known):
                return False
            return top in sections or top not in LEGACY_KEYS

        return {p: v for p, v in flatten(raw).items() if unknown(p)}

    def _read_lenient(self) -> tuple[Settings, list[str], Any]:
        """(settings, problems, the file's JSON or None): never raises for a damaged file."""
        if not self.path.exists():
            return Settings(), [], None
        try:
            raw = _read_json(self.path)
            settings, problems = from_dict(raw, strict=False)
        except SettingsError as exc:
            return Settings(), [str(exc)], None
        return settings, problems, raw

    def load(self) -> Settings:
        """Saved settings (defaults where missing or bad). Problems are logged, kept in ``problems``
        for the window to show, and the damaged file is copied to ``settings.json.bad``."""
        try:
            with _locked(self.path):
                settings = self._load_unlocked()
        except OSError as exc:       # a read-only or missing config folder: run, but say it
            settings = self._load_unlocked()
            self.problems.append(f"the settings folder {self.path.parent} cannot be written ({exc.strerror}): "
                                 "changes will not be saved")
            log.warning("%s", self.problems[-1])
            return settings
        self._baseline = {} if self.problems else flatten(to_dict(settings))    # {}: write it all back, repaired
        return settings

    def _load_unlocked(self) -> Settings:
        settings, self.problems, _ = self._read_lenient()
        if self.problems and self.path.is_file():
            with contextlib.suppress(OSError):
                _copy_safely(self.path, self.backup_path)
            log.warning("settings file %s: %s; using defaults for those, the file as it was is kept as %s",
                        self.path, "; ".join(self.problems), self.backup_path)
        return settings

    def save(self, settings: Settings, session_only: dict[str, Any] | None = None) -> bool:
        """Write what changed since load/last save over the file's current contents.

        ``session_only``: dotted paths set for this run only (command-line options): while a field
        still holds that value it is not written. An invalid value raises SettingsError and nothing
        is written. Returns False when there was nothing to write.
        """
        settings.validate()
        mine = flatten(to_dict(settings))
        for path, value in (session_only or {}).items():
            if path in mine and get_path(settings, path) == value:
                mine.pop(path)
        changed = {p: v for p, v in mine.items() if self._baseline.get(p, _MISSING) != v}
        try:
            with _locked(self.path):
                on_disk, _, raw = self._read_lenient()
                merged = {**self._unknown_in(raw), **flatten(to_dict(on_disk))}     # keys of a newer version stay
                before = dict(merged)
                merged.update(changed)
                if merged == before and self.path.exists() and not self.problems:
                    self._baseline = mine
                    return False
                write_json_atomically(self.path, unflatten(merged))
        except OSError as exc:
            raise SettingsError(f"settings cannot be saved in {self.path.parent}: {exc.strerror or exc}") from None
        self.problems = []
        self._baseline = mine        # this window's view: what others change later is theirs to keep
        return True

