"""The system-tray icon: switch the virtual camera and the background, pause, show or quit, without
bringing up the window, as NVIDIA Broadcast and Snap Camera do during a call.

The menu is built from the window's own controls (the virtual-camera button, the gallery, the
pause action), so the tray and the window can never disagree. Where the desktop has no tray,
``tray_available`` is False and the window behaves as it always has.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QActionGroup, QIcon
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from bgswap.inference.resources import assets_dir


if TYPE_CHECKING:
    from .main_window import MainWindow


def tray_available() -> bool:
    return QSystemTrayIcon.isSystemTrayAvailable()


class Tray:
    """The icon and its menu; ``menu`` works (and is tested) whether or not a tray is shown."""

    def __init__(self, win: "MainWindow"):
        self.win = win
        self.icon = QSystemTrayIcon(QIcon(str(assets_dir() / "icons" / "bgswap.png")), win)
        self.icon.setToolTip("BgSwap")
        self.menu = QMenu()
        self.vcam_action = QAction("Virtual camera", self.menu, checkable=True)
        self.vcam_action.triggered.connect(lambda on: win.vcam.button.setChecked(on))
        self.backgrounds = self.menu.addMenu("Background")
        self.background_group = QActionGroup(self.menu)
        self.frame_action = QAction("Auto-frame", self.menu, checkable=True)
        self.frame_action.triggered.connect(lambda on: win.quality_tab.auto_frame.setChecked(on))
        self.pause_action = QAction("Pause", self.menu, checkable=True)
        self.pause_action.triggered.connect(lambda on: win.pause_action.setChecked(on))
        self.show_action = QAction("Show window", self.menu)
        self.show_action.triggered.connect(self.toggle_window)
        self.quit_action = QAction("Quit", self.menu)
        self.quit_action.triggered.connect(win.quit)
        self.menu.insertAction(self.backgrounds.menuAction(), self.vcam_action)
        for action in (self.frame_action, self.pause_action, None, self.show_action, self.quit_action):
            self.menu.addSeparator() if action is None else self.menu.addAction(action)
        self.menu.aboutToShow.connect(self.refresh)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self.refresh()

    def show(self) -> None:
        self.icon.show()

    def refresh(self) -> None:
        """Bring the menu up to date with the window: camera state, backgrounds, pause, shown or hidden."""
        win = self.win
        self.vcam_action.setChecked(win.vcam.state in ("on", "starting"))
        self.vcam_action.setText("Virtual camera (unavailable: see the window)" if win.vcam.state == "unavailable"
                                 else "Virtual camera")
        self.pause_action.setChecked(win.pause_action.isChecked())
        self.frame_action.setChecked(win.engine.settings.auto_frame)
        self.show_action.setText("Hide window" if win.isVisible() else "Show window")
        self.backgrounds.clear()
        for action in self.background_group.actions():
            self.background_group.removeAction(action)
        for label, spec, current in win.gallery.menu_entries(win.engine.settings.background):
            action = QAction(label, self.backgrounds, checkable=True, checked=current)
            action.triggered.connect(lambda _on, s=spec: win.choose_background(s))
            self.background_group.addAction(action)
            self.backgrounds.addAction(action)

    def toggle_window(self) -> None:
        win = self.win
        if win.isVisible():
            win.hide()
        else:
            win.showNormal()
            win.raise_()
            win.activateWindow()

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:     # a left click shows or hides the window
            self.toggle_window()

    def notify(self, message: str) -> None:
        self.icon.showMessage("BgSwap", message, QSystemTrayIcon.MessageIcon.Information, 6000)
