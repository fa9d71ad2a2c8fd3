"""Guard against PySide6 builds that drop a reference to ``None`` (or ``True``/``False``) per call.

PySide6 6.12.0 on Python 3.11 returns ``None`` from void methods (``QPainter.drawImage``,
``fillRect``, ``setPen``, ``QLabel.setText`` ...) and ``True`` from ``Signal.emit`` without taking a
reference to it, so each call lowers that object's reference count by one; at 30 frames a second
the count reaches zero within minutes and Python aborts (``none_dealloc``, ``bool_dealloc``). From
Python 3.12 on these objects are immortal and the bug is harmless. ``NoneRefGuard`` detects the
bug once at start-up and, where present, puts back the lost references (``top_up``).
"""
from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

_incref = ctypes.pythonapi.Py_IncRef
_incref.argtypes = [ctypes.py_object]
_incref.restype = None


def void_calls_leak_none(calls: int = 64) -> bool:
    """Whether this Qt binding loses a reference to ``None`` per void call (probed on an offscreen image)."""
    if sys.version_info >= (3, 12):
        return False                    # None is immortal: its count cannot reach zero
    from PySide6.QtGui import QColor, QImage, QPainter

    image = QImage(4, 4, QImage.Format.Format_RGB32)
    colour = QColor(0, 0, 0)
    painter = QPainter(image)
    try:
        before = sys.getrefcount(None)
        for _ in range(calls):
            painter.setPen(colour)
        lost = before - sys.getrefcount(None)
    finally:
        painter.end()
    _restore(max(0, lost))
    return lost >= calls // 2


SINGLETONS = (None, True, False)     # the objects such a build returns without a reference of their own


def _restore(n: int, obj=None) -> None:
    for _ in range(n):
        _incref(obj)


class NoneRefGuard:
    """Where the binding is affected (``active``), ``top_up`` raises the counts of ``None``, ``True`` and
    ``False`` back to the highest each has been seen at: it runs after every paint and on a timer, so no
    count can drift to zero, whichever thread made the calls.

    Putting back a reference that a legitimate release (not the bug) took is harmless: these objects
    are never freed, and a count that only the bug lowers can only grow by such top-ups.
    """

    def __init__(self) -> None:
        self.active = void_calls_leak_none()
        self.high = [sys.getrefcount(obj) for obj in SINGLETONS]
        self.restored = 0
        if self.active:
            from PySide6 import __version__ as pyside_version

            log.debug("PySide6 %s on Python %d.%d loses references to None/True/False per call; compensating",
                        pyside_version, *sys.version_info[:2])

    def top_up(self) -> None:
        if not self.active:
            return
        for i, obj in enumerate(SINGLETONS):
            now = sys.getrefcount(obj)
            if now >= self.high[i]:
                self.high[i] = now
            else:
                _restore(self.high[i] - now, obj)
                self.restored += self.high[i] - now


_guard: NoneRefGuard | None = None


def keep_refs_alive(app) -> NoneRefGuard:
    """The guard, topped up every 100 ms by a timer owned by ``app`` (the QApplication), for the void
    calls made between paints."""
    from PySide6.QtCore import QTimer

    guard = none_ref_guard()
    QTimer(app, interval=100, timeout=guard.top_up).start()
    return guard


def none_ref_guard() -> NoneRefGuard:
    """The process's one guard (made on first use, after the QApplication exists)."""
    global _guard
    if _guard is None:
        _guard = NoneRefGuard()
    return _guard
