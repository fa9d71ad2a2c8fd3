"""Thread-to-GUI hand-offs: newest-frame signal and background work with result signals."""
from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, Signal


class FrameBridge(QObject):
    """Called from the pipeline thread; the GUI gets a queued signal, at most one pending at a time.

    A busy GUI thread therefore never accumulates stale frames: it always paints the newest.
    """

    frame_ready = Signal()
    status = Signal(str, str)

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._frame: np.ndarray | None = None
        self._pending = False

    def push(self, frame: np.ndarray) -> None:
        with self._lock:
            self._frame = frame
            if self._pending:
                return
            self._pending = True
        self.frame_ready.emit()

    def take(self) -> np.ndarray | None:
        with self._lock:
            frame, self._frame, self._pending = self._frame, None, False
            return frame

    def report(self, level: str, message: str) -> None:
        self.status.emit(level, message)


class Task(QObject):
    """Runs ``fn`` in a plain thread; ``done``/``failed`` arrive in the GUI thread.

    A running task keeps itself alive until its result has been delivered.
    """

    done = Signal(object)
    failed = Signal(object)
    _alive: set["Task"] = set()

    def __init__(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
                 on_failed: Callable[[BaseException], None] | None = None):
        super().__init__()
        self.fn = fn
        if on_done:
            self.done.connect(on_done)
        if on_failed:
            self.failed.connect(on_failed)
        self.done.connect(self._delivered)
        self.failed.connect(self._delivered)
        self.thread = threading.Thread(target=self._run, name="gui-task", daemon=True)

    def _run(self) -> None:
        try:
            result = self.fn()
        except BaseException as exc:  # reported to the user, never raised into Qt
            self.failed.emit(exc)
        else:
            self.done.emit(result)

    def _delivered(self, _result) -> None:
        Task._alive.discard(self)

    @property
    def finished(self) -> bool:
        return self not in Task._alive

    def start(self) -> "Task":
        Task._alive.add(self)
        self.thread.start()
        return self
