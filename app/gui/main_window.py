"""The main window: the live preview with its banner and stats, the toolbar, the side tabs, shortcuts,
and saving what the user changed. The parts live in their own modules (``tabs/``,
``virtual_camera``); the window wires them together.

All heavy or blocking work (model loading, camera switching, reading backgrounds,
opening the virtual camera) runs in background threads (``Task``); frames arrive
through a queued signal (``FrameBridge``). The GUI thread only paints and reacts.
"""
from __future__ import annotations

import logging
import sys
from typing import Any

from PySide6.QtCore import QByteArray, QEvent, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QSplitter, QTabWidget, QToolBar, QVBoxLayout, QWidget

from ..engine import Engine
from ..settings import Settings, SettingsError, SettingsStore
from ..signals import SignalCatcher
from ..sinks import CallbackSink
from .background_picker import accept_file_drag, dropped_files
from .bridge import FrameBridge, Task
from .context import WindowContext
from .none_refcount import keep_refs_alive
from .preview import PreviewWidget
from .tray import Tray, tray_available
from .tabs.background_tab import BackgroundTab
from .tabs.camera_tab import CameraTab
from .tabs.quality_tab import QualityTab
from .virtual_camera import VirtualCameraControl

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, store: SettingsStore | None = None,
                 session_only: dict[str, Any] | None = None, autostart: bool = True, tray: bool | None = None):
        """``settings``: what to start with (default: the store's); ``session_only``: fields set for this
        run (command-line options), not saved while they keep that value; ``tray``: show a tray icon
        (default: where the desktop has a tray)."""
        super().__init__()
        self.store = store or SettingsStore()
        self.settings = settings if settings is not None else self.store.load()
        self.session_only = dict(session_only or {})
        self.setWindowTitle("BgSwap - background replacement")
        self.setAcceptDrops(True)
        self.bridge = FrameBridge()
        self.bridge.frame_ready.connect(self._on_frame, Qt.ConnectionType.QueuedConnection)
        self.bridge.status.connect(self.show_message, Qt.ConnectionType.QueuedConnection)
        self.engine = Engine(self.settings.engine, on_status=self.bridge.report)
        self.settings.engine = self.engine.settings
        self.ctx = WindowContext(self.engine, self.settings, self.run_task, self.show_message, self._settings_changed)
        self.tasks: list[Task] = []
        self.preview_sink = CallbackSink(self.bridge.push, "preview")
        self.preview_sink.watched = False   # until the window is shown: started in the tray, nobody sees it
        self._quitting = False
        self._build_ui()
        self._build_shortcuts()
        self.tray = Tray(self) if (tray_available() if tray is None else tray) else None
        if self.tray is not None:
            self.tray.show()
        self._stats_timer = QTimer(self, interval=500, timeout=self._update_stats)
        self._stats_timer.start()
        self._save_timer = QTimer(self, interval=3000, singleShot=True, timeout=self.save_settings)
        if self.settings.gui.geometry:
            self.restoreGeometry(QByteArray.fromBase64(self.settings.gui.geometry.encode()))
        else:
            self.resize(1180, 640)
        for problem in self.store.problems:
            self.show_message("warning", f"{problem}: using the default. The old file is kept as "
                                         f"{self.store.backup_path.name}.", 15000)
        if autostart:
            self.start_engine()

    # ---- construction -------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.preview = PreviewWidget()
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background:#5a2d0c;color:white;padding:6px;border-radius:4px")
        self.banner.hide()
        self._banner_timer = QTimer(self, singleShot=True, timeout=self.banner.hide)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(self.banner)
        lv.addWidget(self.preview, 1)

        self.background_tab = BackgroundTab(self.ctx)
        self.camera_tab = CameraTab(self.ctx, self.preview)
        self.quality_tab = QualityTab(self.ctx)
        self.gallery = self.background_tab.gallery
        self.tabs = QTabWidget()
        self.tabs.addTab(self.background_tab, "Background")
        self.tabs.addTab(self.camera_tab, "Camera")
        self.tabs.addTab(self.quality_tab, "Quality")
        self.tabs.setMinimumWidth(300)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(self.tabs)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        self.setCentralWidget(split)

        bar = QToolBar("Main")
        bar.setMovable(False)
        self.addToolBar(bar)
        self.vcam = VirtualCameraControl(self.ctx, bar)
        bar.addSeparator()
        self.pause_action = QAction("Pause", self, checkable=True, toggled=self.set_paused)
        self.pause_action.setToolTip("Freeze the picture (Space)")
        bar.addAction(self.pause_action)
        self.stats_action = QAction("Stats", self, checkable=True, checked=self.settings.gui.show_stats,
                                    toggled=self._toggle_stats)
        bar.addAction(self.stats_action)
        self.stats_label = QLabel()
        self.statusBar().addPermanentWidget(self.stats_label)

    def _build_shortcuts(self) -> None:
        for key, fn in (("B", lambda: self.background_tab.cycle(1)), ("Shift+B", lambda: self.background_tab.cycle(-1)),
                        ("V", self.vcam.button.toggle), ("Space", self.pause_action.toggle),
                        ("M", self.camera_tab.mirror_view.toggle), ("S", self.stats_action.toggle)):
            QShortcut(QKeySequence(key), self, activated=fn, context=Qt.ShortcutContext.WindowShortcut)

    # ---- engine -------------------------------------------------------------------------------
    def run_task(self, fn, on_done=None, on_failed=None) -> Task:
        task = Task(fn, on_done, on_failed or (lambda exc: self.show_message("error", str(exc))))
        self.tasks = [t for t in self.tasks if not t.finished] + [task]
        return task.start()

    def start_engine(self) -> None:
        def start():
            self.engine.start()
            self.engine.add_sink(self.preview_sink)

        def started(_):
            self.preview.placeholder = "Waiting for the camera..."
            self.preview.update()
            self.vcam.engine_started()

        def failed(exc):
            self.preview.placeholder = f"Cannot start: {exc}"
            self.preview.update()
            self.show_message("error", str(exc))

        self.run_task(start, started, failed)

    def _on_frame(self) -> None:
        frame = self.bridge.take()
        if frame is not None:
            self.preview.show_frame(frame)

    def show_message(self, level: str, message: str, ms: int = 8000, status: str | None = None) -> None:
        """Non-blocking: a banner over the preview (warnings, errors) and the status bar. The status bar
        gets ``status``, or the message when it fits there, else its start, pointing at the banner:
        never a sentence cut off."""
        self.statusBar().showMessage(status or self._status_text(level, message), ms)
        if level in ("warning", "error"):
            self.banner.setText(message)
            self.banner.show()
            self._banner_timer.start(ms)

    def status_room(self) -> int:
        """Pixels the status bar has for a message beside the stats readout."""
        bar = self.statusBar()
        return max(200, bar.width() - self.stats_label.sizeHint().width() - 40)

    def _status_text(self, level: str, message: str) -> str:
        fm = self.statusBar().fontMetrics()
        room = self.status_room()
        if fm.horizontalAdvance(message) <= room:
            return message
        if level in ("warning", "error"):       # the banner shows it whole
            head = message.split(": ", 1)[0].rstrip(".")
            short = f"{head}: see the message above the picture"
            if fm.horizontalAdvance(short) <= room:
                return short
        return fm.elidedText(message, Qt.TextElideMode.ElideRight, room)

    def _update_stats(self) -> None:
        snap = self.engine.snapshot()
        ms = snap.stage_ms
        if snap.idle:
            self.stats_label.setText("idle: no one is watching")
            return
        self.stats_label.setText(f"{snap.fps_out:.0f} fps | {snap.latency_ms:.0f} ms | "
                                 f"CPU {snap.cpu_ms_per_frame:.0f} ms/frame")
        if self.stats_action.isChecked():
            self.preview.overlay = (f"out {snap.fps_out:.1f} fps   in {snap.fps_in:.1f}   model {snap.fps_model:.1f}/s\n"
                                    f"latency {snap.latency_ms:.0f} ms   CPU {snap.cpu_ms_per_frame:.1f} ms/frame\n"
                                    f"model {ms.get('model', 0):.1f}  refine {ms.get('refine', 0):.1f}  "
                                    f"composite {ms.get('composite', 0):.1f} ms\n"
                                    f"{snap.backend}   dropped {snap.dropped}"
                                    + ("\nPAUSED" if self.engine.paused else ""))
        else:
            self.preview.overlay = "PAUSED" if self.engine.paused else ""

    # ---- toolbar and shortcuts ----------------------------------------------------------------
    def choose_background(self, spec) -> None:          # a spec's text or a BackgroundSpec
        self.background_tab.choose(spec)

    def add_backgrounds(self, paths: list[str]) -> None:
        self.background_tab.add_files(paths)

    def set_paused(self, paused: bool) -> None:
        self.engine.pause(paused)
        self.pause_action.setText("Resume" if paused else "Pause")

    def _toggle_stats(self, on: bool) -> None:
        self.settings.gui.show_stats = on
        self._update_stats()
        self.preview.update()
        self._settings_changed()

    def _update_watched(self) -> None:
        """The preview counts as watched while the window is shown and not minimised."""
        self.preview_sink.watched = self.isVisible() and not self.isMinimized()

    def changeEvent(self, e) -> None:
        if e.type() == QEvent.Type.WindowStateChange:
            self._update_watched()
        super().changeEvent(e)

    def showEvent(self, e) -> None:
        self._update_watched()
        super().showEvent(e)

    def hideEvent(self, e) -> None:
        self._update_watched()
        super().hideEvent(e)

    def dragEnterEvent(self, e) -> None:
        accept_file_drag(e)

    def dropEvent(self, e) -> None:
        paths = dropped_files(e)
        if paths:
            self.add_backgrounds(paths)

    # ---- persistence --------------------------------------------------------------------------
    def _settings_changed(self) -> None:
        self._save_timer.start()

    def save_settings(self) -> None:
        """Write what this window changed; a value that fails its check is shown, never saved."""
        self.settings.gui.geometry = bytes(self.saveGeometry().toBase64()).decode()
        try:
            self.store.save(self.settings, self.session_only)
        except SettingsError as exc:
            self.show_message("error", f"Settings not saved: {exc}")
        except Exception as exc:          # never in the way of closing the window
            log.exception("saving the settings failed")
            self.show_message("warning", f"Settings could not be saved: {exc}")

    def quit(self) -> None:
        """Close for good (the tray's Quit): settings saved, threads stopped, the app ends."""
        self._quitting = True
        self.close()

    def closeEvent(self, event) -> None:
        if self.tray is not None and not self._quitting and self.vcam.state == "on":
            event.ignore()                   # a call is using the virtual camera: keep it running
            self.hide()
            if not self.settings.gui.tray_hint_shown:
                self.settings.gui.tray_hint_shown = True
                self.tray.notify("BgSwap is still running in the tray, with the virtual camera on. "
                                 "Quit from the tray icon's menu.")
                self.save_settings()
            return
        self._stats_timer.stop()
        self._save_timer.stop()
        self.save_settings()
        self.engine.stop()
        self.vcam.closed()
        for t in self.tasks:
            t.thread.join(timeout=3)
        if self.tray is not None:
            self.tray.icon.hide()
            QTimer.singleShot(0, QApplication.quit)     # the app does not end with its last window any more
        event.accept()


def open_window(settings: Settings | None = None, store: SettingsStore | None = None,
                session_only: dict[str, Any] | None = None, in_tray: bool = False,
                tray: bool | None = None) -> MainWindow:
    """The window, shown, or with ``in_tray`` only its tray icon (the window where the desktop has no
    tray). Hidden, its preview counts as unwatched, so with the virtual camera off the app idles."""
    app = QApplication.instance()
    win = MainWindow(settings, store, session_only, tray=tray)
    if win.tray is not None:
        app.setQuitOnLastWindowClosed(False)       # a hidden window keeps the camera running
    if in_tray and win.tray is None:
        log.warning("--tray: this desktop has no system tray; opening the window")
    if not (in_tray and win.tray is not None):
        win.show()
    return win


def run_gui(settings: Settings | None = None, store: SettingsStore | None = None,
            session_only: dict[str, Any] | None = None, in_tray: bool = False) -> int:
    """Open the window with ``settings`` (default: the saved ones) and run Qt's loop; ``in_tray``:
    start with only the tray icon (the window where the desktop has no tray)."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("BgSwap")
    keep_refs_alive(app)
    signals = SignalCatcher().install()
    try:
        win = open_window(settings, store, session_only, in_tray)
        close_on_signal(win, signals)
        code = app.exec()
    finally:
        signals.restore()
    return signals.exit_code or code


def close_on_signal(win: MainWindow, signals: SignalCatcher) -> QTimer:
    """SIGINT / SIGTERM (Ctrl+C, logout, shutdown) close the window as its close button does: settings
    are saved and every thread stops. Python runs signal handlers between its own calls, so a timer
    gives it that chance while Qt's loop runs."""
    def check() -> None:
        if signals.stop.is_set():
            timer.stop()
            log.info("signal %d: closing the window", signals.signum)
            win.quit()
            QApplication.quit()

    timer = QTimer(win, interval=200, timeout=check)
    timer.start()
    return timer
