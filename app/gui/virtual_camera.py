"""The virtual-camera control in the toolbar: on/off button, device choice, status, and its states
(off -> starting -> on | unavailable), opening the device off the GUI thread. Whether a device
exists is probed at start and every few seconds, so "unavailable" shows before anyone clicks and
goes away by itself once the kernel module is loaded."""
from __future__ import annotations

import html
import textwrap

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QComboBox, QLabel, QPushButton, QToolBar

from ..sinks import SinkUnavailable, VirtualCameraSink, virtual_camera_message, virtual_camera_problem
from ..sources import list_virtual_cameras
from .context import WindowContext

STATE_COLOURS = {"on": "#1e7b34", "unavailable": "#9a2a2a"}
PROBE_MS = 5000             # how often the device is looked for while the camera is off
TOOLTIP_CHARS = 60          # a tooltip's lines wrap at about this many characters (~400 px)


def wrapped_tooltip(text: str, chars: int = TOOLTIP_CHARS) -> str:
    """``text`` as a tooltip of lines of at most ``chars`` characters (Qt shows plain text on one line,
    however long); a command in `backticks` is kept on one line where it fits."""
    lines = textwrap.wrap(text, chars, break_on_hyphens=False, break_long_words=False)
    return '<p style="white-space:pre">' + "<br>".join(html.escape(line) for line in lines) + "</p>"   # Qt's own wrap is narrower


class VirtualCameraControl:
    def __init__(self, ctx: WindowContext, bar: QToolBar):
        self.ctx = ctx
        self.sink: VirtualCameraSink | None = None
        self.state = "off"
        self._probed = False            # the unavailable state came from the probe, not a failed start
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
        self.probe()
        self.timer = QTimer(self.button, interval=PROBE_MS, timeout=self.probe)
        self.timer.start()

    def probe(self) -> None:
        """Show whether a virtual camera device exists (cheap: no device is opened) while it is off."""
        if self.state != "off" and not (self.state == "unavailable" and self._probed):
            return                     # on, starting, or a failed start whose reason stays shown
        reason = virtual_camera_problem(self.ctx.settings.outputs.vcam_backend)
        if reason:
            if self.state != "unavailable":
                self._set_state("unavailable", "no device: hover for the fix")
                self._probed = True
                self.label.setToolTip(wrapped_tooltip(reason))
                self.button.setToolTip(wrapped_tooltip(reason))
            return
        if self.state == "unavailable":
            self._probed = False
            self._set_state("off", "off: a device is ready")
            self.label.setToolTip("")
            self.button.setToolTip("Publish the result as a camera for Zoom, Teams, browsers (V)")
        known = {self.device_box.itemData(i) for i in range(self.device_box.count())}
        for dev in list_virtual_cameras():          # a module loaded meanwhile brings new devices
            if dev not in known:
                self.device_box.addItem(dev, dev)

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
            self._probed = False
            self._set_state("starting", "starting...")
            sink = VirtualCameraSink(self.device_box.currentData(), out.vcam_backend)

            def started(_):
                self.sink = sink
                out.virtual_camera = True
                self._set_state("on", f"on: {sink.device_name}")
                self.label.setToolTip("")
                self.button.setToolTip("Publish the result as a camera for Zoom, Teams, browsers (V)")
                self.ctx.settings_changed()

            def failed(exc):
                self.button.blockSignals(True)
                self.button.setChecked(False)
                self.button.blockSignals(False)
                reason = (str(exc) if isinstance(exc, SinkUnavailable)
                          else virtual_camera_message(str(exc), self.device_box.currentData()))
                self._set_state("unavailable", "unavailable: hover for the fix")
                self.label.setToolTip(wrapped_tooltip(reason))
                self.button.setToolTip(wrapped_tooltip(reason))
                self.ctx.show_message("warning", reason, 15000,
                                      status="Virtual camera unavailable: the message above the picture says why")

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
        self.button.setText(f"Virtual camera: {state if state in ('on', 'unavailable') else 'off'}")
        color = STATE_COLOURS.get(state, "")
        self.button.setStyleSheet(f"background:{color};color:white" if color else "")

    def closed(self) -> None:
        self.sink = None        # the engine closes its sinks when it stops
