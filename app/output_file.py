"""A recording's files beside its output: the lock that keeps a second process out, the hidden partial
file it is written to, and the final move into place that never replaces what it must not."""
from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
from pathlib import Path

log = logging.getLogger("bgswap.app.sinks")


class OutputUnavailable(RuntimeError):
    """The output cannot be written: the message says why and what to do."""


class OutputLocked(OutputUnavailable):
    """Another process is writing the same output file."""


class OutputFile:
    """``path``'s lock (``.NAME.lock``, opened without following links), its partial file and its move."""

    def __init__(self, path: Path, overwrite: bool = False):
        self.path, self.overwrite = path, overwrite
        self._lock_file = None
        self.partial_path: Path | None = None

    def lock(self) -> None:
        """Take the output's lock (OutputLocked when another process holds it, OutputUnavailable when it
        cannot be made) and remove partial files
        that a crashed run left behind."""
        self._take_lock()
        self._remove_stale_partials()

    def new_partial(self) -> Path:
        """A new hidden partial file beside the output, made with a random name (never a name that may
        already exist, such as a planted link), with the permissions of any new file."""
        fd, name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".partial{self.path.suffix}",
                                    dir=self.path.parent)      # O_CREAT | O_EXCL, mode 0600
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)          # as any new file: mkstemp's 0600 would hide the recording
        os.close(fd)
        self.partial_path = Path(name)
        return self.partial_path

    def discard_partial(self) -> None:
        if self.partial_path is not None:
            self.partial_path.unlink(missing_ok=True)

    def _take_lock(self) -> None:
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        try:
            import fcntl
        except ImportError:       # Windows: the partial file's rename still keeps the output whole
            return
        try:        # never through a link: a planted one would make us create or lock another file
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OutputUnavailable(f"{lock_path} is a symbolic link, not bgswap's lock: remove it "
                                      "or choose another --output folder") from exc
            raise OutputUnavailable(f"cannot write in {self.path.parent}: {exc.strerror}") from exc
        f = os.fdopen(fd, "r+")
        self._lock_path = lock_path
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise OutputLocked(f"another bgswap is writing {self.path}: choose another --output name") from None
        self._lock_file = f

    def _remove_stale_partials(self) -> None:
        """Remove partial files of this output that a crashed or killed run left behind. Only with the
        output's lock held: then no live process writes one of them."""
        if self._lock_file is None:
            return
        name = re.compile(rf"\.{re.escape(self.path.stem)}\.[a-z0-9_]{{8}}\.partial{re.escape(self.path.suffix)}")
        try:
            found = [p for p in self.path.parent.iterdir() if name.fullmatch(p.name)]
        except OSError as exc:           # a folder we may write in but not list: nothing to tidy
            log.debug("cannot list %s for stale partial files: %s", self.path.parent, exc)
            return
        for p in found:
            try:
                if p.is_file() and not p.is_symlink():
                    p.unlink()
                    log.info("removed %s, left by an earlier recording that did not finish", p.name)
            except OSError as exc:       # another user's, in a shared folder: leave it
                log.warning("cannot remove %s, left by an earlier recording: %s", p, exc)

    def release(self) -> None:
        if self._lock_file is not None:
            self._lock_path.unlink(missing_ok=True)
            self._lock_file.close()
            self._lock_file = None

    def move_into_place(self) -> Path:
        """Move the finished partial file to ``path``: with ``overwrite`` replacing what is there, else
        never replacing a file that appeared meanwhile (it goes to ``NAME (2).EXT`` and so on instead)."""
        if self.overwrite:
            os.replace(self.partial_path, self.path)
            return self.path
        for n in range(1, 1000):
            target = self.path if n == 1 else self.path.with_name(f"{self.path.stem} ({n}){self.path.suffix}")
            try:
                os.link(self.partial_path, target)          # fails when target exists: nothing is replaced
            except FileExistsError:
                continue
            except OSError as exc:                          # a file system without hard links
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                    raise
                if os.path.lexists(target):
                    continue
                os.replace(self.partial_path, target)
                return target
            self.partial_path.unlink()
            if n > 1:
                log.warning("%s appeared during the run and is kept; the recording is %s", self.path, target)
            return target
        raise OSError(errno.EEXIST, f"no free name beside {self.path}")
