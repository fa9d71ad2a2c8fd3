"""Camera tab: which camera or file, its resolution and frame rate, and mirroring."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QCheckBox, QComboBox, QFileDialog, QFormLayout, QWidget

from ...sources import list_cameras
from ..context import WindowContext
from ..preview import PreviewWidget
from .background_tab import FILE_FILTER

RESOLUTIONS = [(640, 480), (960, 540), (1280, 720), (1920, 1080)]
FRAME_RATES = [15, 24, 30, 60]


class CameraTab(QWidget):
    def __init__(self, ctx: WindowContext, preview: PreviewWidget):
        super().__init__()
        self.ctx, self.preview = ctx, preview
        s = ctx.engine.settings
        f = QFormLayout(self)
        self.source_box = QComboBox()
        self.source_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)   # no cut-off labels
        self.source_box.addItem("Demo clip (no camera)", "demo")
        for dev in list_cameras():
            self.source_box.addItem(f"Camera {dev}", dev)
        self.source_box.addItem("Video or image file...", "file")
        self._select_source(s.source)
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
        self.res_box.activated.connect(lambda _i: self.set_source(self.ctx.engine.settings.source))
        f.addRow("Resolution", self.res_box)
        self.fps_box = QComboBox()
        for r in FRAME_RATES:
            self.fps_box.addItem(f"{r} fps", float(r))
        fi = self.fps_box.findData(float(s.fps))
        if fi < 0:
            self.fps_box.addItem(f"{s.fps:g} fps", float(s.fps))
            fi = self.fps_box.count() - 1
        self.fps_box.setCurrentIndex(fi)
        self.fps_box.activated.connect(lambda _i: self.set_source(self.ctx.engine.settings.source))
        f.addRow("Frame rate", self.fps_box)
        self.mirror_out = QCheckBox("Mirror the output")
        self.mirror_out.setChecked(s.mirror)
        self.mirror_out.toggled.connect(lambda on: self.ctx.engine_update(mirror=on))
        f.addRow(self.mirror_out)
        self.mirror_view = QCheckBox("Mirror my preview (M)")
        self.mirror_view.setChecked(ctx.settings.gui.preview_mirror)
        self.preview.mirror_view = ctx.settings.gui.preview_mirror
        self.mirror_view.toggled.connect(self._set_preview_mirror)
        f.addRow(self.mirror_view)

    def _select_source(self, spec: str) -> None:
        i = self.source_box.findData(spec)
        if i < 0:
            self.source_box.insertItem(self.source_box.count() - 1, Path(spec).name, spec)
            i = self.source_box.count() - 2
        self.source_box.setCurrentIndex(i)

    def _source_chosen(self, _index: int) -> None:
        spec = self.source_box.currentData()
        if spec == "file":
            path, _ = QFileDialog.getOpenFileName(self, "Play a file as the camera", str(Path.home()), FILE_FILTER)
            if not path:
                self._select_source(self.ctx.engine.settings.source)
                return
            self._select_source(path)
            spec = path
        self.set_source(spec)

    def set_source(self, spec: str) -> None:
        """Switch off the GUI thread; a source that fails leaves the current one running."""
        w, h = self.res_box.currentData()
        fps = self.fps_box.currentData()

        def failed(exc):
            self.ctx.show_message("error", f"{exc}. Keeping the current camera.")
            self._select_source(self.ctx.engine.settings.source)

        self.ctx.run_task(lambda: self.ctx.engine.set_source(spec, w, h, fps),
                          lambda _: self.ctx.settings_changed(), failed)

    def _set_preview_mirror(self, on: bool) -> None:
        self.preview.mirror_view = on
        self.ctx.settings.gui.preview_mirror = on
        self.preview.update()
        self.ctx.settings_changed()
