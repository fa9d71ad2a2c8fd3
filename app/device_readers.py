"""Whether any program reads a device node (the virtual camera): Linux inotify open/close events,
as Linux-Fake-Background-Webcam does, started from a scan of /proc for readers already there.

``ReaderWatch(path).readers`` is the number of handles other processes hold on it. inotify merges
identical events that arrive together (two closes in a row read as one), so an event only says
"something changed" and the handles are then counted in /proc. Where inotify is missing the watch
reports one reader, so the app never idles by mistake.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import select
import threading
from pathlib import Path

log = logging.getLogger(__name__)

IN_OPEN, IN_CLOSE_WRITE, IN_CLOSE_NOWRITE = 0x20, 0x08, 0x10
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000


def open_elsewhere(path: Path) -> int:
    """Handles on ``path`` held by other processes (what /proc shows; unreadable processes are skipped)."""
    target = str(path.resolve())
    me, n = os.getpid(), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == me:
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        n += 1
                except OSError:
                    continue
        except OSError:
            continue
    return n


class ReaderWatch:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._count = 0
        self._fd = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        libc_name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(libc_name, use_errno=True) if libc_name else None
        if libc is None or not hasattr(libc, "inotify_init1"):
            log.info("no inotify here: the virtual camera counts as watched all the time")
            return
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0 or libc.inotify_add_watch(fd, str(self.path).encode(), IN_OPEN | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE) < 0:
            if fd >= 0:
                os.close(fd)
            log.info("cannot watch %s for readers: the virtual camera counts as watched all the time", self.path)
            return
        self._fd = fd
        self._count = open_elsewhere(self.path)
        self._thread = threading.Thread(target=self._run, name="reader-watch", daemon=True)
        self._thread.start()

    @property
    def available(self) -> bool:
        return self._fd >= 0

    @property
    def readers(self) -> int:
        if not self.available:
            return 1
        with self._lock:
            return self._count

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(self._fd, 4096)
            except BlockingIOError:
                continue
            except OSError:
                break
            if data:                  # only open and close events are asked for
                count = open_elsewhere(self.path)
                with self._lock:
                    self._count = count

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
