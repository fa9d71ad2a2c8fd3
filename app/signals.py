"""SIGINT / SIGTERM (and SIGHUP) as requests the run can act on, instead of Python's defaults
(a KeyboardInterrupt traceback in whatever code runs, or death without saving)."""
from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalCatcher:
    """While installed, SIGINT/SIGTERM set ``stop`` (and ``signum``); SIGHUP sets ``reload``."""

    def __init__(self, reload: bool = False):
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.signum: int | None = None
        self._wanted = STOP_SIGNALS + ((signal.SIGHUP,) if reload and hasattr(signal, "SIGHUP") else ())
        self._old: dict[int, object] = {}

    def install(self) -> "SignalCatcher":
        for s in self._wanted:
            self._old[s] = signal.signal(s, self._on_signal)
        return self

    def restore(self) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)
        self._old.clear()

    def _on_signal(self, signum: int, _frame) -> None:
        if hasattr(signal, "SIGHUP") and signum == signal.SIGHUP:
            self.reload.set()
            return
        self.signum = signum
        self.stop.set()

    @property
    def exit_code(self) -> int | None:
        """128 + the signal's number (130 for SIGINT, 143 for SIGTERM), or None without a signal."""
        return None if self.signum is None else 128 + self.signum
