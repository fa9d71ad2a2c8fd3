"""The main window: live preview, background gallery, camera, quality and virtual camera controls.

All heavy or blocking work (model loading, camera switching, reading backgrounds,
opening the virtual camera) runs in background threads (``Task``); frames arrive
through a queued signal (``FrameBridge``). The GUI thread only paints and reacts.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (QApplication, QCheckBox, QColorDialog, QComboBox, QFileDialog, QFormLayout,
                               QLabel, QMainWindow, QPushButton, QSlider, QSplitter, QTabWidget,
                               QToolBar, QVBoxLayout, QWidget)

from inference.compose import IMAGE_EXTS, VIDEO_EXTS, parse_background
from inference.refine import RefineSettings

from ..engine import ASSETS, Engine
from ..sinks import CallbackSink, SinkUnavailable, VirtualCameraSink, virtual_camera_fix
from ..sources import list_cameras, list_virtual_cameras
from .background_picker import BackgroundGallery, accept_file_drag, bundled_backgrounds, dropped_files
from .bridge import FrameBridge, Task
from .none_refcount import keep_refs_alive
from .preview import PreviewWidget
from .settings_store import GuiSettings, load_gui_settings, save_gui_settings

log = logging.getLogger(__name__)

RESOLUTIONS = [(640, 480), (960, 540), (1280, 720), (1920, 1080)]
FRAME_RATES = [15, 24, 30, 60]
INPUT_SIZES = [160, 192, 224, 256, 320]
FILE_FILTER = "Images and videos (" + " ".join(f"*{e}" for e in sorted(IMAGE_EXTS | VIDEO_EXTS)) + ")"


class MainWindow(QMainWindow):
    def __init__(self, gs: GuiSettings | None = None, autostart: bool = True):
        super().__init__()
        self.gs = gs or load_gui_settings()
        self.setWindowTitle("BgSwap - background replacement")
        self.setAcceptDrops(True)
        self.bridge = FrameBridge()
        self.bridge.frame_ready.connect(self._on_frame, Qt.ConnectionType.QueuedConnection)
        self.bridge.status.connect(self._on_status, Qt.ConnectionType.QueuedConnection)
        self.engine = Engine(self.gs.engine, on_status=self.bridge.report)
        self.vcam: VirtualCameraSink | None = None
        self.vcam_state = "off"
        self.tasks: list[Task] = []
        self.last_message = ""
        self._build_ui()
        self._build_shortcuts()
        self._stats_timer = QTimer(self, interval=500, timeout=self._update_stats)
        self._stats_timer.start()
        self._save_timer = QTimer(self, interval=3000, singleShot=True, timeout=self.save_settings)
        if self.gs.geometry:
            self.restoreGeometry(QByteArray.fromBase64(self.gs.geometry.encode()))
        else:
            self.resize(1180, 640)
        if autostart:
            self.start_engine()

    # ---- construction -------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.preview = PreviewWidget()
        self.preview.mirror_view = self.gs.preview_mirror
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

        self.tabs = QTabWidget()
        self.tabs.addTab(self._background_tab(), "Background")
        self.tabs.addTab(self._camera_tab(), "Camera")
        self.tabs.addTab(self._quality_tab(), "Quality")
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
        self.vcam_button = QPushButton("Virtual camera: off")
        self.vcam_button.setCheckable(True)
        self.vcam_button.setToolTip("Publish the result as a camera for Zoom, Teams, browsers (V)")
        self.vcam_button.toggled.connect(self.set_virtual_camera)
        bar.addWidget(self.vcam_button)
        self.vcam_device = QComboBox()
        self.vcam_device.setToolTip("Virtual camera device")
        self.vcam_device.addItem("Auto", None)
        for dev in list_virtual_cameras():
            self.vcam_device.addItem(dev, dev)
        if self.gs.vcam_device:
            i = self.vcam_device.findData(self.gs.vcam_device)
            if i < 0:
                self.vcam_device.addItem(self.gs.vcam_device, self.gs.vcam_device)
                i = self.vcam_device.count() - 1
            self.vcam_device.setCurrentIndex(i)
        self.vcam_device.currentIndexChanged.connect(self._vcam_device_changed)
        bar.addWidget(self.vcam_device)
        self.vcam_label = QLabel("  off")
        self.vcam_label.setWordWrap(True)
        bar.addWidget(self.vcam_label)
        bar.addSeparator()
        self.pause_action = QAction("Pause", self, checkable=True, toggled=self.set_paused)
        self.pause_action.setToolTip("Freeze the picture (Space)")
        bar.addAction(self.pause_action)
        self.stats_action = QAction("Stats", self, checkable=True, checked=self.gs.show_stats,
                                    toggled=self._toggle_stats)
        bar.addAction(self.stats_action)
        self.stats_label = QLabel()
        self.statusBar().addPermanentWidget(self.stats_label)

    def _background_tab(self) -> QWidget:
        w = QWidget()
        v = QVBoxLayout(w)
        self.gallery = BackgroundGallery()
        self.gallery.blur_strength = int(self.gs.blur_strength)
        self.gallery.color = self.gs.color
        self.gallery.populate(bundled_backgrounds(ASSETS / "backgrounds"), list(self.gs.user_backgrounds))
        self.gallery.chosen.connect(self.choose_background)
        self.gallery.add_requested.connect(self._add_dialog)
        self.gallery.color_requested.connect(self._color_dialog)
        self.gallery.files_dropped.connect(self.add_backgrounds)
        v.addWidget(self.gallery, 1)
        form = QFormLayout()
        self.blur_slider = QSlider(Qt.Orientation.Horizontal, minimum=1, maximum=60, value=self.gallery.blur_strength)
        self.blur_slider.valueChanged.connect(self._blur_changed)
        form.addRow("Blur strength", self.blur_slider)
        v.addLayout(form)
        hint = QLabel("Drop images or videos here to add them. B / Shift+B: next / previous background")
        hint.setWordWrap(True)
        v.addWidget(hint)
        self.gallery.mark(self.gs.engine.background)
        return w

    def _camera_tab(self) -> QWidget:
        w = QWidget()
        f = QFormLayout(w)
        self.source_box = QComboBox()
        self.source_box.addItem("Demo clip (no camera needed)", "demo")
        for dev in list_cameras():
            self.source_box.addItem(f"Camera {dev}", dev)
        self.source_box.addItem("Video or image file...", "file")
        s = self.gs.engine
        i = self.source_box.findData(s.source)
        if i < 0:
            self.source_box.insertItem(self.source_box.count() - 1, Path(s.source).name, s.source)
            i = self.source_box.count() - 2
        self.source_box.setCurrentIndex(i)
        self.source_box.activated.connect(self._source_chosen)
        f.addRow("Camera", self.source_box)
        self.res_box = QComboBox()
        for rw, rh in RESOLUTIONS:
            self.res_box.addItem(f"{rw} x {rh}", (rw, rh))
        ri = self.res_box.findData((s.width, s.height))
        if ri < 0:
            self.res_box.addItem(f"{s.width} x {s.height}", (s.width, s.height))
            ri = self.res_box.count() - 1
        self.res_box.setCurrentIndex(ri)
        self.res_box.activated.connect(lambda _i: self._restart_source())
        f.addRow("Resolution", self.res_box)
        self.fps_box = QComboBox()
        for r in FRAME_RATES:
            self.fps_box.addItem(f"{r} fps", float(r))
        fi = self.fps_box.findData(float(s.fps))
        self.fps_box.setCurrentIndex(fi if fi >= 0 else FRAME_RATES.index(30))
        self.fps_box.activated.connect(lambda _i: self._restart_source())
        f.addRow("Frame rate", self.fps_box)
        self.mirror_out = QCheckBox("Mirror the output")
        self.mirror_out.setChecked(s.mirror)
        self.mirror_out.toggled.connect(lambda on: self._engine_update(mirror=on))
        f.addRow(self.mirror_out)
        self.mirror_view = QCheckBox("Mirror my preview (M)")
        self.mirror_view.setChecked(self.preview.mirror_view)
        self.mirror_view.toggled.connect(self._set_preview_mirror)
        f.addRow(self.mirror_view)
        return w

    def _quality_tab(self) -> QWidget:
        w = QWidget()
        f = QFormLayout(w)
        r = self.gs.engine.refine
        self.size_box = QComboBox()
        for size in INPUT_SIZES:
            self.size_box.addItem(f"{size} ({'faster' if size < 256 else 'default' if size == 256 else 'sharper'})", size)
        si = self.size_box.findData(self.gs.engine.input_size or 256)
        self.size_box.setCurrentIndex(si if si >= 0 else INPUT_SIZES.index(256))
        self.size_box.activated.connect(self._input_size_chosen)
        f.addRow("Model input size", self.size_box)
        self.edge_slider = self._slider(0, 16, r.edge_radius, lambda v: self._engine_update(edge_radius=v))
        f.addRow("Edge smoothing", self.edge_slider)
        self.colour_edges = self._engine_checkbox(
            "Follow colour edges", "colour_edges", r.colour_edges,
            "Sharper edges; off follows brightness only, 2-5 ms faster per frame")
        f.addRow(self.colour_edges)
        self.temporal_slider = self._slider(0, 95, round(r.temporal * 100),
                                            lambda v: self._engine_update(temporal=v / 100))
        f.addRow("Temporal smoothing", self.temporal_slider)
        self.threshold_slider = self._slider(10, 90, round(r.threshold * 100),
                                             lambda v: self._engine_update(threshold=v / 100))
        f.addRow("Threshold", self.threshold_slider)
        self.feather_slider = self._slider(0, 50, round(r.feather * 100), lambda v: self._engine_update(feather=v / 100))
        f.addRow("Edge softness", self.feather_slider)
        self.largest = self._engine_checkbox("Only the largest person", "largest_person_only", r.largest_person_only)
        f.addRow(self.largest)
        self.async_box = self._engine_checkbox(
            "Keep full frame rate", "async_segmentation", self.gs.engine.async_segmentation,
            "When the model is slower than the camera, show every frame with the newest mask "
            "instead of waiting for the model")
        f.addRow(self.async_box)
        reset = QPushButton("Restore defaults")
        reset.clicked.connect(self._restore_quality_defaults)
        f.addRow(reset)
        return w

    def _engine_checkbox(self, label: str, setting: str, checked: bool, tooltip: str = "") -> QCheckBox:
        """A checkbox that sets the engine's boolean ``setting`` when toggled."""
        box = QCheckBox(label)
        box.setToolTip(tooltip)
        box.setChecked(checked)
        box.toggled.connect(lambda on: self._engine_update(**{setting: on}))
        return box

    def _slider(self, lo: int, hi: int, value: int, on_change) -> QSlider:
        s = QSlider(Qt.Orientation.Horizontal, minimum=lo, maximum=hi, value=int(value))
        s.valueChanged.connect(on_change)
        return s

    def _build_shortcuts(self) -> None:
        for key, fn in (("B", lambda: self.cycle_background(1)), ("Shift+B", lambda: self.cycle_background(-1)),
                        ("V", self.vcam_button.toggle), ("Space", self.pause_action.toggle),
                        ("M", self.mirror_view.toggle), ("S", self.stats_action.toggle)):
            QShortcut(QKeySequence(key), self, activated=fn, context=Qt.ShortcutContext.WindowShortcut)

    # ---- engine -------------------------------------------------------------------------------
    def run_task(self, fn, on_done=None, on_failed=None) -> Task:
        task = Task(fn, on_done, on_failed or self._task_failed)
        self.tasks = [t for t in self.tasks if not t.finished] + [task]
        return task.start()

    def start_engine(self) -> None:
        def start():
            self.engine.start()
            self.engine.add_sink(CallbackSink(self.bridge.push, "preview"))

        def started(_):
            self.preview.placeholder = "Waiting for the camera..."
            self.preview.update()
            if self.gs.virtual_camera:
                self.vcam_button.setChecked(True)

        def failed(exc):
            self.preview.placeholder = f"Cannot start: {exc}"
            self.preview.update()
            self.show_message("error", str(exc))

        self.run_task(start, started, failed)

    def _on_frame(self) -> None:
        frame = self.bridge.take()
        if frame is not None:
            self.preview.show_frame(frame)

    def _on_status(self, level: str, message: str) -> None:
        self.show_message(level, message)

    def show_message(self, level: str, message: str, ms: int = 8000) -> None:
        """Non-blocking: a banner over the preview (warnings, errors) and the status bar."""
        self.last_message = message
        self.statusBar().showMessage(message, ms)
        if level in ("warning", "error"):
            self.banner.setText(message)
            self.banner.show()
            self._banner_timer.start(ms)

    def _task_failed(self, exc: BaseException) -> None:
        self.show_message("error", str(exc))

    def _update_stats(self) -> None:
        snap = self.engine.snapshot()
        ms = snap.stage_ms
        short = f"{snap.fps_out:.0f} fps | {snap.latency_ms:.0f} ms | CPU {snap.cpu_ms_per_frame:.0f} ms/frame"
        self.stats_label.setText(short)
        if self.stats_action.isChecked():
            self.preview.overlay = (f"out {snap.fps_out:.1f} fps   in {snap.fps_in:.1f}   model {snap.fps_model:.1f}/s\n"
                                    f"latency {snap.latency_ms:.0f} ms   CPU {snap.cpu_ms_per_frame:.1f} ms/frame\n"
                                    f"model {ms.get('model', 0):.1f}  refine {ms.get('refine', 0):.1f}  "
                                    f"composite {ms.get('composite', 0):.1f} ms\n"
                                    f"{snap.backend}   dropped {snap.dropped}"
                                    + ("\nPAUSED" if self.engine.paused else ""))
        else:
            self.preview.overlay = "PAUSED" if self.engine.paused else ""

    def _engine_update(self, **changes) -> None:
        try:
            self.engine.update(**changes)
        except ValueError as exc:
            self.show_message("error", str(exc))
            return
        self._settings_changed()

    def _restore_quality_defaults(self) -> None:
        d = RefineSettings()
        for slider, value in ((self.edge_slider, d.edge_radius), (self.temporal_slider, round(d.temporal * 100)),
                              (self.threshold_slider, round(d.threshold * 100)),
                              (self.feather_slider, round(d.feather * 100))):
            slider.setValue(value)
        self.largest.setChecked(d.largest_person_only)
        self.colour_edges.setChecked(d.colour_edges)

    def _input_size_chosen(self, _index: int) -> None:
        size = self.size_box.currentData()
        self.run_task(lambda: self.engine.update(input_size=size), lambda _: self._settings_changed())

    # ---- backgrounds --------------------------------------------------------------------------
    def choose_background(self, spec: str) -> None:
        """Load ``spec`` off the GUI thread; on failure the current background stays."""
        previous = self.engine.settings.background

        def applied(bg):
            self.engine.set_background(bg)
            self.engine.settings.background = spec
            self.gallery.mark(spec)
            self.statusBar().showMessage(f"Background: {bg.label}", 3000)
            self._settings_changed()

        def failed(exc):
            self.show_message("error", f"{exc}. Keeping the current background.")
            self.gallery.mark(previous)

        self.run_task(lambda: parse_background(spec), applied, failed)

    def cycle_background(self, step: int) -> None:
        specs = self.gallery.selectable_specs()
        if not specs:
            return
        cur = self.engine.settings.background
        kinds = [s.split(":", 1)[0] if s.startswith(("blur", "color")) else s for s in specs]
        key = cur.split(":", 1)[0] if cur.startswith(("blur", "color")) else cur
        i = kinds.index(key) if key in kinds else -1
        self.choose_background(specs[(i + step) % len(specs)])

    def add_backgrounds(self, paths: list[str]) -> None:
        """Validate each file off the GUI thread, then add it to the gallery and apply the last one."""
        for path in paths:
            def added(_bg, p=path):
                self.gallery.add_file(p, user=True)
                if p not in self.gs.user_backgrounds:
                    self.gs.user_backgrounds.append(p)
                self.choose_background(p)

            def failed(exc, p=path):
                self.show_message("error", f"Cannot add {Path(p).name}: {exc}")

            self.run_task(lambda p=path: parse_background(p), added, failed)

    def _add_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a background", str(Path.home()), FILE_FILTER)
        if path:
            self.add_backgrounds([path])

    def _color_dialog(self) -> None:
        color = QColorDialog.getColor(QColor(self.gallery.color), self, "Background colour")
        if color.isValid():
            self.set_color(color.name().upper())

    def set_color(self, color: str) -> None:
        self.gallery.set_color(color)
        self.gs.color = color
        self.choose_background(f"color:{color}")

    def _blur_changed(self, value: int) -> None:
        self.gallery.blur_strength = value
        self.gs.blur_strength = value
        if self.engine.settings.background.startswith("blur"):
            self.choose_background(f"blur:{value}")

    def dragEnterEvent(self, e) -> None:
        accept_file_drag(e)

    def dropEvent(self, e) -> None:
        paths = dropped_files(e)
        if paths:
            self.add_backgrounds(paths)

    # ---- camera -------------------------------------------------------------------------------
    def _source_chosen(self, _index: int) -> None:
        spec = self.source_box.currentData()
        if spec == "file":
            path, _ = QFileDialog.getOpenFileName(self, "Play a file as the camera", str(Path.home()), FILE_FILTER)
            if not path:
                self.source_box.setCurrentIndex(max(0, self.source_box.findData(self.engine.settings.source)))
                return
            self.source_box.insertItem(self.source_box.count() - 1, Path(path).name, path)
            self.source_box.setCurrentIndex(self.source_box.count() - 2)
            spec = path
        self.set_source(spec)

    def _restart_source(self) -> None:
        self.set_source(self.engine.settings.source)

    def set_source(self, spec: str) -> None:
        w, h = self.res_box.currentData()
        fps = self.fps_box.currentData()

        def failed(exc):
            self.show_message("error", f"{exc}. Keeping the current camera.")
            self.source_box.setCurrentIndex(max(0, self.source_box.findData(self.engine.settings.source)))

        self.run_task(lambda: self.engine.set_source(spec, w, h, fps), lambda _: self._settings_changed(), failed)

    def _set_preview_mirror(self, on: bool) -> None:
        self.preview.mirror_view = on
        self.gs.preview_mirror = on
        self.preview.update()
        self._settings_changed()

    def set_paused(self, paused: bool) -> None:
        self.engine.pause(paused)
        self.pause_action.setText("Resume" if paused else "Pause")

    def _toggle_stats(self, on: bool) -> None:
        self.gs.show_stats = on
        self._update_stats()
        self.preview.update()
        self._settings_changed()

    # ---- virtual camera -----------------------------------------------------------------------
    def _vcam_device_changed(self, _index: int) -> None:
        self.gs.vcam_device = self.vcam_device.currentData()
        if self.vcam is not None:
            self.set_virtual_camera(False)
            self.vcam_button.setChecked(True)
        self._settings_changed()

    def set_virtual_camera(self, on: bool) -> None:
        if not self.engine.running and on:
            self.gs.virtual_camera = True   # applied once the engine is up
            return
        if on and self.vcam is None:
            self._set_vcam_state("starting", "starting...")
            sink = VirtualCameraSink(self.vcam_device.currentData(), self.gs.vcam_backend)

            def started(_):
                self.vcam = sink
                self.gs.virtual_camera = True
                self._set_vcam_state("on", f"on: {sink.device_name}")
                self._settings_changed()

            def failed(exc):
                self.vcam_button.blockSignals(True)
                self.vcam_button.setChecked(False)
                self.vcam_button.blockSignals(False)
                reason = str(exc) if isinstance(exc, SinkUnavailable) else f"{exc}. Fix: {virtual_camera_fix()}"
                self._set_vcam_state("unavailable", "unavailable")
                self.vcam_label.setToolTip(reason)
                self.show_message("warning", reason, 15000)

            self.run_task(lambda: self.engine.add_sink(sink), started, failed)
        elif not on and self.vcam is not None:
            sink, self.vcam = self.vcam, None
            self.gs.virtual_camera = False
            self._set_vcam_state("off", "off")
            self.run_task(lambda: self.engine.remove_sink(sink))
            self._settings_changed()

    def _set_vcam_state(self, state: str, text: str) -> None:
        self.vcam_state = state
        self.vcam_label.setText(f"  {text}")
        self.vcam_button.setText(f"Virtual camera: {'on' if state == 'on' else 'off'}")
        color = {"on": "#1e7b34", "unavailable": "#9a2a2a"}.get(state, "")
        self.vcam_button.setStyleSheet(f"background:{color};color:white" if color else "")

    # ---- persistence --------------------------------------------------------------------------
    def _settings_changed(self) -> None:
        self._save_timer.start()

    def save_settings(self) -> None:
        self.gs.geometry = bytes(self.saveGeometry().toBase64()).decode()
        try:
            save_gui_settings(self.gs)
        except OSError as exc:
            self.show_message("warning", f"Settings could not be saved: {exc}")

    def closeEvent(self, event) -> None:
        self._stats_timer.stop()
        self._save_timer.stop()
        self.save_settings()
        self.engine.stop()
        self.vcam = None
        for t in self.tasks:
            t.thread.join(timeout=3)
        event.accept()


def run_gui(settings=None, args: argparse.Namespace | None = None) -> int:
    """Open the window (``settings`` from the command line override the saved ones)."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("BgSwap")
    gs = load_gui_settings()
    if settings is not None:
        gs.engine = settings
    if args is not None:
        if args.virtual_cam:
            gs.virtual_camera = True
        if args.device:
            gs.vcam_device = args.device
        if args.vcam_backend:
            gs.vcam_backend = args.vcam_backend
    keep_refs_alive(app)
    win = MainWindow(gs)
    win.show()
    return app.exec()
