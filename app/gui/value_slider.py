"""A slider with its value written beside it, so a person can read what they set."""
from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QWidget


def with_value(slider: QSlider, shown: Callable[[int], str]) -> QWidget:
    """``slider`` in a row with a label showing ``shown(value)``, kept up to date."""
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    label = QLabel(shown(slider.value()))
    label.setMinimumWidth(label.fontMetrics().horizontalAdvance(" 0.000 px "))
    slider.valueChanged.connect(lambda v: label.setText(shown(v)))
    layout.addWidget(slider, 1)
    layout.addWidget(label)
    slider.value_label = label          # for tests and screenshots
    slider.show_value = lambda: label.setText(shown(slider.value()))   # after a change with signals blocked
    return row


def set_quietly(slider: QSlider, value: int) -> None:
    """Move ``slider`` without sending its change on (it came from the settings), its label following."""
    slider.blockSignals(True)
    slider.setValue(value)
    slider.blockSignals(False)
    show = getattr(slider, "show_value", None)
    if show is not None:
        show()
