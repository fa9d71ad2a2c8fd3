"""Quality tab: model input size, edge and temporal refinement, threshold, and the frame-rate policy."""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QPushButton, QSlider, QWidget

from bgswap.inference.model_meta import ModelError, ModelMeta
from bgswap.inference.refine import setting_range
from bgswap.inference.segmenter import model_dir_for

from ...settings import EngineSettings
from ...settings.convert import engine_with
from ...settings.presets import CUSTOM, PRESET_HELP, PRESET_LABELS, PRESET_NAMES, preset_values
from ..context import WindowContext
from ..value_slider import set_quietly, with_value

INPUT_SIZES = [160, 192, 224, 256, 320]   # offered beside the model's own size (meta.json)


def _percent_range(name: str, scale: int = 100) -> tuple[int, int]:
    """A slider's ends: the edge setting's own range (``refine.setting_range``), in hundredths unless ``scale``."""
    lo, hi = setting_range(name)
    return round(lo * scale), round(hi * scale)


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
        self._show_preset()
        self.preset_box.setToolTip("How much CPU the app may use: the model's rate, threads and size in one choice")
        self.preset_box.activated.connect(lambda _i: self.choose_preset(self.preset_box.currentData()))
        f.addRow("Performance", self.preset_box)
        self.size_box = QComboBox()
        seg = self.ctx.engine.segmenter
        try:                          # the running model's meta.json, else the one the settings name
            meta = seg.meta if seg is not None else ModelMeta.load(model_dir_for(s.model_dir, s.model, compute="cpu"))
        except (ModelError, ValueError):   # the engine reports a bad model folder; the tab still opens
            meta = ModelMeta()
        self.model_size = max(meta.input_size)
        self.size_box.setToolTip("The longer side of the model's input, in pixels; the other follows the camera's "
                                 "shape (a 3:4 photo: 192x256)" if meta.frame_aspect else
                                 "The model's input, in pixels a side: smaller is faster, larger sharper")
        for size in sorted({*INPUT_SIZES, self.model_size}):
            note = "faster" if size < self.model_size else "default" if size == self.model_size else "sharper"
            self.size_box.addItem(f"{size} ({note})", size)
        self._show_input_size()
        self.size_box.activated.connect(self._input_size_chosen)
        f.addRow("Model input size", self.size_box)
        self.edge_slider = self._slider(*_percent_range('edge_radius', 1), r.edge_radius, lambda v: self._update(edge_radius=v))
        self.edge_slider.setToolTip("How far (in model pixels) the mask follows the picture's edges; 0 = off")
        f.addRow("Edge smoothing", with_value(self.edge_slider, lambda v: f"{v} px"))
        self.colour_edges = self._checkbox("Follow colour edges", "colour_edges", r.colour_edges,
                                           "Sharper edges; off follows brightness only, 2-5 ms faster per frame")
        f.addRow(self.colour_edges)
        self.temporal_slider = self._slider(*_percent_range('temporal'), round(r.temporal * 100),
                                            lambda v: self._update(temporal=v / 100))
        self.temporal_slider.setToolTip("How much of the last mask each new one keeps: steadier, but slower "
                                        "to follow a movement; 0 = off")
        f.addRow("Temporal smoothing", with_value(self.temporal_slider, lambda v: f"{v} %"))
        self.threshold_slider = self._slider(*_percent_range('threshold'), round(r.threshold * 100),
                                             lambda v: self._update(threshold=v / 100))
        self.threshold_slider.setToolTip("How sure the model must be that a pixel is you: higher drops more of "
                                         "the room (and of your edges), lower keeps more of both")
        f.addRow("Threshold", with_value(self.threshold_slider, lambda v: f"{v / 100:.2f}"))
        self.feather_slider = self._slider(*_percent_range('feather'), round(r.feather * 100), lambda v: self._update(feather=v / 100))
        self.feather_slider.setToolTip("How gradually you blend into the background at your outline; 0 = a hard cut")
        f.addRow("Edge softness", with_value(self.feather_slider, lambda v: f"{v / 100:.2f}"))
        self.largest = self._checkbox("Only the largest person", "largest_person_only", r.largest_person_only)
        f.addRow(self.largest)
        self.decontaminate = self._checkbox("Clean edge colours", "decontaminate", r.decontaminate,
                                            "Your outline takes your own colour instead of the room's behind you "
                                            "(costs 1.5-3 ms per frame)")
        f.addRow(self.decontaminate)
        self.wrap_slider = self._slider(*_percent_range('light_wrap'), round(r.light_wrap * 100), lambda v: self._update(light_wrap=v / 100))
        self.wrap_slider.setToolTip("A little of the new background's light spills onto your outline, so you look lit "
                                    "by it; 0 = off (costs 3-5 ms per frame when on)")
        f.addRow("Light wrap", with_value(self.wrap_slider, lambda v: f"{v / 100:.2f}"))
        self.async_box = self._checkbox(
            "Keep full frame rate", "async_segmentation", s.async_segmentation,
            "When the model is slower than the camera, show every frame with the newest mask "
            "instead of waiting for the model")
        f.addRow(self.async_box)
        self.auto_frame = self._checkbox("Auto-frame: keep me centred", "auto_frame", s.auto_frame,
                                         "A digital pan and zoom (1.5x at most) that follows you, like Center Stage")
        f.addRow(self.auto_frame)
        reset = QPushButton("Restore defaults")
        reset.clicked.connect(self.restore_defaults)
        f.addRow(reset)

    def _checkbox(self, label: str, setting: str, checked: bool, tooltip: str = "") -> QCheckBox:
        """A checkbox that sets the engine's boolean ``setting`` when toggled."""
        box = QCheckBox(label)
        box.setToolTip(tooltip)
        box.setChecked(checked)
        box.toggled.connect(lambda on: self._update(**{setting: on}))
        return box

    def _update(self, **changes) -> None:
        """One knob changed: apply it, then show which preset the knobs now match (or Custom)."""
        if self.ctx.engine_update(**changes):
            self._show_preset()

    def _show_preset(self) -> None:
        name = self.ctx.engine.settings.preset
        i = self.preset_box.findData(name)
        if i < 0 and name == CUSTOM:
            self.preset_box.addItem(PRESET_LABELS[CUSTOM], CUSTOM)
            i = self.preset_box.count() - 1
        custom = self.preset_box.findData(CUSTOM)
        if name != CUSTOM and custom >= 0:               # Custom is listed only while it is the state
            self.preset_box.removeItem(custom)
            i = self.preset_box.findData(name)
        self.preset_box.setCurrentIndex(max(0, i))

    def _show_settings(self) -> None:
        """Every control from the engine's settings, without sending anything back (value labels follow)."""
        s = self.ctx.engine.settings
        r = s.refine
        for widget, value in ((self.edge_slider, r.edge_radius), (self.temporal_slider, round(r.temporal * 100)),
                              (self.threshold_slider, round(r.threshold * 100)),
                              (self.feather_slider, round(r.feather * 100)), (self.largest, r.largest_person_only),
                              (self.decontaminate, r.decontaminate), (self.wrap_slider, round(r.light_wrap * 100)),
                              (self.colour_edges, r.colour_edges), (self.async_box, s.async_segmentation),
                              (self.auto_frame, s.auto_frame)):
            if isinstance(widget, QSlider):
                set_quietly(widget, value)
            else:
                widget.blockSignals(True)
                widget.setChecked(value)
                widget.blockSignals(False)
        self._show_input_size()
        self._show_preset()

    @staticmethod
    def _slider(lo: int, hi: int, value: int, on_change: Callable[[int], None]) -> QSlider:
        s = QSlider(Qt.Orientation.Horizontal, minimum=lo, maximum=hi, value=int(value))
        s.valueChanged.connect(on_change)
        return s

    def restore_defaults(self) -> None:
        """Every field of this tab back to the schema's defaults (the default preset's knobs included)."""
        d = EngineSettings()            # the default preset's knobs are its defaults too
        new = engine_with(self.ctx.engine.settings, preset_values(d.preset))
        new.refine, new.async_segmentation, new.auto_frame = d.refine, d.async_segmentation, d.auto_frame

        def applied(_):
            self._show_settings()
            self.ctx.settings_changed()

        self.ctx.run_task(lambda: self.ctx.engine.apply(new), applied)

    def _show_input_size(self) -> None:
        """Select the engine's input size (None: the model's own) in the size box."""
        self.size_box.setCurrentIndex(max(0, self.size_box.findData(self.ctx.engine.settings.input_size
                                                                    or self.model_size)))

    def choose_preset(self, name: str) -> None:
        """Apply a preset's knobs (a new model is built off the GUI thread), then show them."""
        if name == CUSTOM:                  # already the state: there is nothing to apply
            return
        new = engine_with(self.ctx.engine.settings, preset_values(name))

        def applied(_):
            self._show_settings()
            self.ctx.show_message("info", f"Performance: {PRESET_LABELS[name]} ({PRESET_HELP[name]})", 5000)
            self.ctx.settings_changed()

        self.ctx.run_task(lambda: self.ctx.engine.apply(new), applied)

    def _input_size_chosen(self, _index: int) -> None:
        size = self.size_box.currentData()
        size = None if size == self.model_size else size      # the model's own size is the default, not a choice
        def applied(_):
            self._show_preset()
            self.ctx.settings_changed()

        self.ctx.run_task(lambda: self.ctx.engine.update(input_size=size), applied)
