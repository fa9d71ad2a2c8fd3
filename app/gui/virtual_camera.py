"""The virtual-camera control in the toolbar: on/off button, device choice, status, and its states
(off -> starting -> on | unavailable), opening the device off the GUI thread."""
from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QLabel, QPushButton, QToolBar

from ..sinks import SinkUnavailable, VirtualCameraSink, virtual_camera_fix
from ..sources import list_virtual_cameras
from .context import WindowContext

STATE_COLOURS = {"on": "#1e7b34", "unavailable": "#9a2a2a"}


class VirtualCameraControl:
    def __init__(self, ctx: WindowContext, bar: QToolBar):
        self.ctx = ctx
        self.sink: VirtualCameraSink | None = None
        self.state = "off"
        out = ctx.settings.outputs
        self.button = QPushButton("Virtual camera: off")
        self.button.setCheckable(True)
        self.button.setToolTip("Publish the result as a camera for Zoom, Teams, browsers (V)")
        self.button.toggled.connect(self.set_on)
        bar.addWidget(self.button)
        self.device_box = QComboBox()
        self.device_box.setToolTip("Virtual camera device")
        self.device_box.addItem("Auto", None)
        for dev in list_virtual_cameras():
            self.device_box.addItem(dev, dev)
        if out.vcam_device:
            i = self.device_box.findData(out.vcam_device)
            if i < 0:
                self.device_box.addItem(out.vcam_device, out.vcam_device)
                i = self.device_box.count() - 1
            self.device_box.setCurrentIndex(i)
        self.device_box.currentIndexChanged.connect(self._device_changed)
        bar.addWidget(self.device_box)
        self.label = QLabel("  off")
        self.label.setWordWrap(True)
        bar.addWidget(self.label)

    def engine_started(self) -> None:
        """Turn on what the settings ask for once frames flow."""
        if self.ctx.settings.outputs.virtual_camera:
            self.button.setChecked(True)

    def set_on(self, on: bool) -> None:
        out = self.ctx.settings.outputs
        if on and not self.ctx.engine.running:
            out.virtual_camera = True       # applied by engine_started
            return
        if on and self.sink is None:
            self._set_state("starting", "starting...")
            sink = VirtualCameraSink(self.device_box.currentData(), out.vcam_backend)

            def started(_):
                self.sink = sink
                out.virtual_camera = True
                self._set_state("on", f"on: {sink.device_name}")
                self.ctx.settings_changed()

            def failed(exc):
                self.button.blockSignals(True)
                self.button.setChecked(False)
                self.button.blockSignals(False)
                reason = str(exc) if isinstance(exc, SinkUnavailable) else f"{exc}. Fix: {virtual_camera_fix()}"
                self._set_state("unavailable", "unavailable")
                self.label.setToolTip(reason)
                self.ctx.show_message("warning", reason, 15000)

            self.ctx.run_task(lambda: self.ctx.engine.add_sink(sink), started, failed)
        elif not on and self.sink is not None:
            sink, self.sink = self.sink, None
            out.virtual_camera = False
            self._set_state("off", "off")
            self.ctx.run_task(lambda: self.ctx.engine.remove_sink(sink))
            self.ctx.settings_changed()

    def _device_changed(self, _index: int) -> None:
        self.ctx.settings.outputs.vcam_device = self.device_box.currentData()
        if self.sink is not None:          # move the running camera to the new device
            self.set_on(False)
            self.set_on(True)
        self.ctx.settings_changed()

    def _set_state(self, state: str, text: str) -> None:
        self.state = state
        self.label.setText(f"  {text}")
        self.button.setText(f"Virtual camera: {'on' if state == 'on' else 'off'}")
        color = STATE_COLOURS.get(state, "")
        self.button.setStyleSheet(f"background:{color};color:white" if color else "")

    def closed(self) -> None:
        self.sink = None        # the engine closes its sinks when it stops
