"""The live preview: paints the newest frame scaled with its aspect kept, plus a stats overlay."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from .none_refcount import none_ref_guard


def bgr_to_qimage(frame: np.ndarray) -> QImage:
    h, w = frame.shape[:2]
    frame = np.ascontiguousarray(frame)
    return QImage(frame.data, w, h, frame.strides[0], QImage.Format.Format_BGR888).copy()


class PreviewWidget(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.image: QImage | None = None
        self.mirror_view = False
        self.overlay = ""
        self.placeholder = "Starting camera..."
        self.frames_shown = 0
        self._none_guard = none_ref_guard()

    def show_frame(self, frame: np.ndarray) -> None:
        self.image = bgr_to_qimage(frame)
        self.frames_shown += 1
        self.update()

    def target_rect(self) -> QRectF:
        if self.image is None:
            return QRectF(self.rect())
        iw, ih = self.image.width(), self.image.height()
        s = min(self.width() / iw, self.height() / ih)
        w, h = iw * s, ih * s
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        try:
            self._paint(p)
        finally:
            p.end()
            self._none_guard.top_up()

    def _paint(self, p: QPainter) -> None:
        p.fillRect(self.rect(), QColor(18, 18, 20))
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        if self.image is None:
            p.setPen(QColor(200, 200, 200))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
            return
        r = self.target_rect()
        if self.mirror_view:
            p.save()
            p.translate(r.center())
            p.scale(-1, 1)
            p.translate(-r.center())
            p.drawImage(r, self.image)
            p.restore()
        else:
            p.drawImage(r, self.image)
        if self.overlay:
            p.setFont(QFont("monospace", 9))
            lines = self.overlay.splitlines()
            box = QRectF(r.left() + 8, r.top() + 8, 330, 16 * len(lines) + 8)
            p.fillRect(box, QColor(0, 0, 0, 150))
            p.setPen(QColor(235, 235, 235))
            for i, line in enumerate(lines):
                p.drawText(int(box.left() + 6), int(box.top() + 17 + 16 * i), line)
