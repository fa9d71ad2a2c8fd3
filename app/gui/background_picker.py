"""Background gallery: None, Blur, Colour, bundled and user-added images/videos, and "Add..."."""
from __future__ import annotations

from collections import deque
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem

from bgswap.inference.background_spec import DEFAULT_BLUR, DEFAULT_COLOR, BackgroundError, BackgroundSpec
from bgswap.inference.media import media_kind

from .bridge import Task
from .preview import bgr_to_qimage

ROLE_SPEC = Qt.ItemDataRole.UserRole
ROLE_KIND = Qt.ItemDataRole.UserRole + 1
THUMB = QSize(112, 63)


def read_thumbnail(path: str) -> np.ndarray | None:
    """First frame / image, cover-fitted to the thumbnail size (runs off the GUI thread)."""
    from bgswap.inference.backgrounds import BackgroundError, cover_fit, read_image

    p = Path(path)
    if not p.is_file():                 # a FIFO or a device would block the thumbnail reader
        return None
    img = None
    if media_kind(p) == "video":
        cap = cv2.VideoCapture(str(p))
        ok, img = cap.read()
        cap.release()
        img = img if ok else None
    else:
        try:
            img = read_image(p)         # with its size limit: a huge picture is never decoded whole
        except BackgroundError:
            img = None
    return None if img is None else cover_fit(img, THUMB.width(), THUMB.height())


def accept_file_drag(event) -> None:
    """Accept drags that carry files (for dragEnter/dragMove handlers)."""
    if event.mimeData().hasUrls():
        event.acceptProposedAction()


def dropped_files(event) -> list[str]:
    """Local file paths of a drop event (accepting it when there are any)."""
    paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
    if paths:
        event.acceptProposedAction()
    return paths


def swatch(color: QColor, text: str = "") -> QIcon:
    pm = QPixmap(THUMB)
    pm.fill(color)
    if text:
        p = QPainter(pm)
        p.setPen(QColor(255, 255, 255) if color.lightness() < 140 else QColor(20, 20, 20))
        p.drawText(pm.rect(), Qt.AlignmentFlag.AlignCenter, text)
        p.end()
    return QIcon(pm)


class BackgroundGallery(QListWidget):
    """Emits ``chosen(spec)`` for a background, ``add_requested``/``color_requested`` for the specials."""

    chosen = Signal(object)         # a BackgroundSpec: parsed once, when its entry was made
    add_requested = Signal()
    color_requested = Signal()
    files_dropped = Signal(list)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setIconSize(THUMB)
        self.setGridSize(QSize(THUMB.width() + 14, THUMB.height() + 30))
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setWordWrap(True)
        self.setAcceptDrops(True)
        self.setDragDropMode(QListWidget.DragDropMode.DropOnly)
        self.itemClicked.connect(self._clicked)
        self.blur_strength = DEFAULT_BLUR
        self.color = DEFAULT_COLOR
        self._by_identity: dict[str, QListWidgetItem] = {}    # file identity -> its item: no scans
        self._thumbs: deque[tuple[str, QListWidgetItem]] = deque()   # read one at a time, in order
        self._reading = False

    # ---- contents -----------------------------------------------------------------------------
    def populate(self, bundled: list[Path], user: list[str]) -> None:
        self.clear()
        self._by_identity.clear()
        self._thumbs.clear()
        self._add_special("None", "none", swatch(QColor(60, 60, 60), "No effect"))
        self._add_special("Blur", "blur", swatch(QColor(110, 130, 150), "Blur"))
        self._add_special("Colour", "color", swatch(QColor(self.color), "Colour..."))
        for p in bundled:
            self.add_file(str(p), user=False)
        for p in user:
            self.add_file(p, user=True)
        self._add_special("Add...", "add", swatch(QColor(40, 40, 40), "+ Add...")).setToolTip(
            "Add an image or a video (or drop files onto the window)")

    def _add_special(self, label: str, kind: str, icon: QIcon) -> QListWidgetItem:
        item = QListWidgetItem(icon, label)
        item.setData(ROLE_KIND, kind)
        item.setData(ROLE_SPEC, BackgroundSpec(kind) if kind in ("none",) else None)
        self.addItem(item)
        return item

    def add_file(self, path: str, user: bool = True) -> QListWidgetItem:
        """Add (or find) a file item; its thumbnail is read in the background, one file at a time."""
        existing = self.item_for_spec(path)
        if existing is not None:
            return existing
        try:
            spec = BackgroundSpec.parse(path)
        except BackgroundError:
            spec = BackgroundSpec("file", path)          # shown as unreadable; choosing it says why
        item = QListWidgetItem(swatch(QColor(30, 30, 30), "..."), Path(path).stem.replace("_", " "))
        item.setData(ROLE_KIND, "user" if user else "file")
        item.setData(ROLE_SPEC, spec)
        item.setToolTip(path)
        last = self.item(self.count() - 1) if self.count() else None
        if last is not None and last.data(ROLE_KIND) == "add":        # the Add tile stays last
            self.insertItem(self.count() - 1, item)
        else:
            self.addItem(item)
        self._by_identity[spec.identity] = item
        self._thumbs.append((path, item))
        self._read_next_thumbnail()
        return item

    def _read_next_thumbnail(self) -> None:
        if self._reading or not self._thumbs:
            return
        path, item = self._thumbs.popleft()
        self._reading = True

        def shown(img, it=item) -> None:
            self._reading = False
            self._set_thumb(it, img)
            self._read_next_thumbnail()

        def failed(_exc, it=item) -> None:
            shown(None, it)

        Task(lambda: read_thumbnail(path), shown, failed).start()

    def _set_thumb(self, item: QListWidgetItem, img) -> None:
        try:
            if img is not None:
                item.setIcon(QIcon(QPixmap.fromImage(bgr_to_qimage(img))))
            else:
                item.setIcon(swatch(QColor(90, 30, 30), "unreadable"))
        except RuntimeError:   # the item was removed meanwhile
            pass

    def _row_of_kind(self, kind: str) -> int | None:
        for i in range(self.count()):
            if self.item(i).data(ROLE_KIND) == kind:
                return i
        return None

    def spec_of(self, item: QListWidgetItem) -> BackgroundSpec | None:
        """What choosing ``item`` applies (None for Add...): blur and colour at the gallery's current
        strength and colour, files as parsed when their entry was made."""
        kind = item.data(ROLE_KIND)
        if kind == "blur":
            return BackgroundSpec("blur", self.blur_strength)
        if kind == "color":
            return BackgroundSpec.parse(f"color:{self.color}")
        return item.data(ROLE_SPEC)

    def _identity(self, item: QListWidgetItem) -> str | None:
        spec = self.spec_of(item)
        return spec.identity if spec is not None else None

    def menu_entries(self, current: str) -> list[tuple[str, BackgroundSpec, bool]]:
        """(label, spec, whether it is ``current``) of every entry a menu can apply directly (not Add...
        or Colour..., which open dialogs)."""
        here = self.item_for_spec(current)
        return [(self.item(i).text(), self.spec_of(self.item(i)), self.item(i) is here) for i in range(self.count())
                if self.item(i).data(ROLE_KIND) not in ("add", "color")]

    def item_for_spec(self, spec: "str | BackgroundSpec") -> QListWidgetItem | None:
        """The entry showing ``spec`` (any strength for blur, any colour for colour, same file for files)."""
        try:
            target = BackgroundSpec.parse(spec).identity
        except BackgroundError:
            return None
        if target in self._by_identity:
            return self._by_identity[target]
        for i in range(min(self.count(), 4)):          # None, Blur, Colour: the specials come first
            if self._identity(self.item(i)) == target:
                return self.item(i)
        return None

    def selectable_specs(self) -> list[BackgroundSpec]:
        """Specs of every background a click can apply (for cycling with B)."""
        return [s for s in (self.spec_of(self.item(i)) for i in range(self.count())) if s is not None]

    def next_spec(self, current: str, step: int) -> BackgroundSpec | None:
        """The spec ``step`` entries after (or before) ``current`` in the gallery, wrapping round."""
        specs = self.selectable_specs()
        if not specs:
            return None
        item = self.item_for_spec(current)
        here = self._identity(item) if item is not None else None
        ids = [s.identity for s in specs]
        i = ids.index(here) if here in ids else -1
        return specs[(i + step) % len(specs)]

    def mark(self, spec: "str | BackgroundSpec") -> None:
        """Highlight the item for ``spec`` without emitting anything."""
        item = self.item_for_spec(spec)
        self.blockSignals(True)
        self.setCurrentItem(item) if item is not None else self.clearSelection()
        self.blockSignals(False)

    def set_color(self, color: str) -> None:
        self.color = color
        row = self._row_of_kind("color")
        if row is not None:
            self.item(row).setIcon(swatch(QColor(color), "Colour..."))

    # ---- interaction --------------------------------------------------------------------------
    def _clicked(self, item: QListWidgetItem) -> None:
        kind = item.data(ROLE_KIND)
        if kind == "add":
            self.add_requested.emit()
        elif kind == "color":
            self.color_requested.emit()
        else:
            self.chosen.emit(self.spec_of(item))

    def dragEnterEvent(self, e) -> None:
        accept_file_drag(e)

    def dragMoveEvent(self, e) -> None:
        accept_file_drag(e)

    def dropEvent(self, e) -> None:
        paths = dropped_files(e)
        if paths:
            self.files_dropped.emit(paths)
