"""Quality tab: model input size, edge and temporal refinement, threshold, and the frame-rate policy."""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QPushButton, QSlider, QWidget

from bgswap.inference.model_meta import ModelMeta
from bgswap.inference.refine import RefineSettings
from bgswap.inference.resources import default_model_dir

from ...settings.presets import PRESET_HELP, PRESET_LABELS, PRESET_NAMES, preset_values
from ..context import WindowContext

INPUT_SIZES = [160, 192, 224, 256, 320]   # offered beside the model's own size (meta.json)


class QualityTab(QWidget):
    def __init__(self, ctx: WindowContext):
        super().__init__()
        self.ctx = ctx
        s = ctx.engine.settings
        r = s.refine
        f = QFormLayout(self)
        self.preset_box = QComboBox()
        for name in PRESET_NAMES:
            self.preset_box.addItem(PRESET_LABELS[name], name)
            self.preset_box.setItemData(self.preset_box.count() - 1, PRESET_HELP[name], Qt.ItemDataRole.ToolTipRole)
        self.preset_box.setCurrentIndex(max(0, self.preset_box.findData(s.preset)))
        self.preset_box.setToolTip("How much CPU the app may use: the model's rate, threads and size in one choice")
        self.preset_box.activated.connect(lambda _i: self.choose_preset(self.preset_box.currentData()))
        f.addRow("Performance", self.preset_box)
        self.size_box = QComboBox()
        self.model_size = ModelMeta.load(s.model_dir or default_model_dir()).input_size[1]   # meta.json's
        for size in sorted({*INPUT_SIZES, self.model_size}):
            note = "faster" if size < self.model_size else "default" if size == self.model_size else "sharper"
            self.size_box.addItem(f"{size} ({note})", size)
        self._show_input_size()
        self.size_box.activated.connect(self._input_size_chosen)
        f.addRow("Model input size", self.size_box)
        self.edge_slider = self._slider(0, 16, r.edge_radius, lambda v: ctx.engine_update(edge_radius=v))
        f.addRow("Edge smoothing", self.edge_slider)
        self.colour_edges = self._checkbox("Follow colour edges", "colour_edges", r.colour_edges,
                                           "Sharper edges; off follows brightness only, 2-5 ms faster per frame")
        f.addRow(self.colour_edges)
        self.temporal_slider = self._slider(0, 95, round(r.temporal * 100),
                                            lambda v: ctx.engine_update(temporal=v / 100))
        f.addRow("Temporal smoothing", self.temporal_slider)
        self.threshold_slider = self._slider(10, 90, round(r.threshold * 100),
                                             lambda v: ctx.engine_update(threshold=v / 100))
        f.addRow("Threshold", self.threshold_slider)
        self.feather_slider = self._slider(0, 50, round(r.feather * 100), lambda v: ctx.engine_update(feather=v / 100))
        f.addRow("Edge softness", self.feather_slider)
        self.largest = self._checkbox("Only the largest person", "largest_person_only", r.largest_person_only)
        f.addRow(self.largest)
        self.async_box = self._checkbox(
            "Keep full frame rate", "async_segmentation", s.async_segmentation,
            "When the model is slower than the camera, show every frame with the newest mask "
            "instead of waiting for the model")
        f.addRow(self.async_box)
        reset = QPushButton("Restore defaults")
        reset.clicked.connect(self.restore_defaults)
        f.addRow(reset)

    def _checkbox(self, label: str, setting: str, checked: bool, tooltip: str = "") -> QCheckBox:
        """A checkbox that sets the engine's boolean ``setting`` when toggled."""
        box = QCheckBox(label)
        box.setToolTip(tooltip)
        box.setChecked(checked)
        box.toggled.connect(lambda on: self.ctx.engine_update(**{setting: on}))
        return box

    @staticmethod
    def _slider(lo: int, hi: int, value: int, on_change: Callable[[int], None]) -> QSlider:
        s = QSlider(Qt.Orientation.Horizontal, minimum=lo, maximum=hi, value=int(value))
        s.valueChanged.connect(on_change)
        return s

    def restore_defaults(self) -> None:
        d = RefineSettings()
        for slider, value in ((self.edge_slider, d.edge_radius), (self.temporal_slider, round(d.temporal * 100)),
                              (self.threshold_slider, round(d.threshold * 100)),
                              (self.feather_slider, round(d.feather * 100))):
            slider.setValue(value)
        self.largest.setChecked(d.largest_person_only)
        self.colour_edges.setChecked(d.colour_edges)

    def _show_input_size(self) -> None:
        """Select the engine's input size (None: the model's own) in the size box."""
        self.size_box.setCurrentIndex(max(0, self.size_box.findData(self.ctx.engine.settings.input_size
                                                                    or self.model_size)))

    def choose_preset(self, name: str) -> None:
        """Apply a preset's knobs (a new model is built off the GUI thread), then show them."""
        changes = {path.rsplit(".", 1)[1]: v for path, v in preset_values(name).items()}

        def applied(_):
            s = self.ctx.engine.settings
            self._show_input_size()
            self.colour_edges.blockSignals(True)
            self.colour_edges.setChecked(s.refine.colour_edges)
            self.colour_edges.blockSignals(False)
            self.ctx.show_message("info", f"Performance: {PRESET_LABELS[name]} ({PRESET_HELP[name]})", 5000)
            self.ctx.settings_changed()

        self.ctx.run_task(lambda: self.ctx.engine.update(**changes), applied)

    def _input_size_chosen(self, _index: int) -> None:
        size = self.size_box.currentData()
        self.ctx.run_task(lambda: self.ctx.engine.update(input_size=size), lambda _: self.ctx.settings_changed())
