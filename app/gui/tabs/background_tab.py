"""Background tab: the gallery (None, Blur, Colour, bundled and user files, Add...), blur strength,
and choosing, cycling and adding backgrounds (files are checked off the GUI thread)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QColorDialog, QFileDialog, QFormLayout, QLabel, QSlider, QVBoxLayout, QWidget

from bgswap.inference.background_spec import BLUR_RANGE, BackgroundError, BackgroundSpec
from bgswap.inference.backgrounds import parse_background
from bgswap.inference.media import MEDIA_EXTS
from bgswap.inference.resources import bundled_backgrounds

from ..background_picker import BackgroundGallery
from ..context import WindowContext
from ..value_slider import with_value

FILE_FILTER = "Images and videos (" + " ".join(f"*{e}" for e in sorted(MEDIA_EXTS)) + ")"


class BackgroundTab(QWidget):
    def __init__(self, ctx: WindowContext):
        super().__init__()
        self.ctx = ctx
        gui = ctx.settings.gui
        v = QVBoxLayout(self)
        self.gallery = BackgroundGallery()
        self.gallery.blur_strength = gui.blur_strength
        self.gallery.color = gui.color
        self.gallery.populate(bundled_backgrounds(), list(gui.user_backgrounds))
        self.gallery.chosen.connect(self.choose)
        self.gallery.add_requested.connect(self._add_dialog)
        self.gallery.color_requested.connect(self._color_dialog)
        self.gallery.files_dropped.connect(self.add_files)
        v.addWidget(self.gallery, 1)
        form = QFormLayout()
        self.blur_slider = QSlider(Qt.Orientation.Horizontal, minimum=BLUR_RANGE[0], maximum=BLUR_RANGE[1],
                                   value=self.gallery.blur_strength)
        self.blur_slider.setToolTip(f"How strongly Blur blurs the room ({BLUR_RANGE[0]}-{BLUR_RANGE[1]}, as blur:N "
                                    "on the command line)")
        self.blur_slider.valueChanged.connect(self._blur_changed)
        form.addRow("Blur strength", with_value(self.blur_slider, str))
        v.addLayout(form)
        hint = QLabel("Drop images or videos here to add them. B / Shift+B: next / previous background")
        hint.setWordWrap(True)
        v.addWidget(hint)
        self.gallery.mark(ctx.engine.settings.background)
        self.gallery.scrollToTop()       # None, Blur and Colour in view, not scrolled to the chosen picture
        QTimer.singleShot(0, self.gallery.scrollToTop)

    def choose(self, spec: "BackgroundSpec | str") -> None:
        """Load ``spec`` off the GUI thread; on failure the current background stays. Its text is parsed
        here once (a gallery entry's spec arrives parsed), and the typed value travels on."""
        try:
            spec = BackgroundSpec.parse(spec)
        except BackgroundError as exc:
            self.ctx.show_message("error", f"{exc}. Keeping the current background.")
            return
        engine = self.ctx.engine
        previous = engine.settings.background

        def applied(bg):
            engine.set_background(spec, bg)
            self.gallery.mark(spec)
            self.ctx.show_message("info", f"Background: {bg.label}", 3000)
            self.ctx.settings_changed()

        def failed(exc):
            self.ctx.show_message("error", f"{exc}. Keeping the current background.")
            self.gallery.mark(previous)

        self.ctx.run_task(lambda: parse_background(spec, fit=engine.output_size), applied, failed)

    def cycle(self, step: int) -> None:
        spec = self.gallery.next_spec(self.ctx.engine.settings.background, step)
        if spec is not None:
            self.choose(spec)

    def add_files(self, paths: list[str]) -> None:
        """Check each file off the GUI thread, then add it to the gallery and apply the last one."""
        user = self.ctx.settings.gui.user_backgrounds
        for path in paths:
            def added(_bg, p=path):
                self.gallery.add_file(p, user=True)
                if p not in user:
                    user.append(p)
                self.choose(p)

            def failed(exc, p=path):
                self.ctx.show_message("error", f"Cannot add {Path(p).name}: {exc}")

            self.ctx.run_task(lambda p=path: parse_background(p, fit=self.ctx.engine.output_size), added, failed)

    def set_color(self, color: str) -> None:
        color = str(BackgroundSpec.parse(f"color:{color}").value)
        self.gallery.set_color(color)
        self.ctx.settings.gui.color = color
        self.choose(f"color:{color}")

    def _add_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a background", str(Path.home()), FILE_FILTER)
        if path:
            self.add_files([path])

    def _color_dialog(self) -> None:
        color = QColorDialog.getColor(QColor(self.gallery.color), self, "Background colour")
        if color.isValid():
            self.set_color(color.name().upper())

    def _blur_changed(self, value: int) -> None:
        self.gallery.blur_strength = value
        self.ctx.settings.gui.blur_strength = value
        if BackgroundSpec.parse(self.ctx.engine.settings.background).kind == "blur":
            self.choose(f"blur:{value}")
        else:
            self.ctx.settings_changed()
