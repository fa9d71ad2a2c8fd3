"""Screenshots of the real window under X: each tab, the small-screen size and the tray menu.

    apt-get install xvfb trayer <Qt's xcb libraries, see the README>
    xvfb-run -a -s "-screen 0 1280x800x24" bash -c "trayer --edge top --align right & sleep 1; \
        QT_QPA_PLATFORM=xcb python tools/gui_screenshots.py docs/gui"

Opens the window on the demo clip with a bundled background (settings in a temporary folder),
and writes ``<out>/tab-background.png``, ``tab-camera.png``, ``tab-quality.png`` (default size),
``quality-after-restore-defaults.png``, ``vcam-banner.png`` and ``vcam-tooltip.png`` (the virtual
camera's error, on a machine without v4l2loopback), ``quality-1024x600.png``, ``tray-menu.png`` and
``screen-tray.png`` (the whole screen, with the tray host and BgSwap's icon in it).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(out: Path) -> int:
    os.environ.setdefault("BGSWAP_CONFIG_DIR", tempfile.mkdtemp())
    from PySide6.QtCore import QEventLoop, QPoint, QTimer
    from PySide6.QtWidgets import QApplication, QToolTip

    from bgswap.app.gui.main_window import MainWindow
    from bgswap.app.gui.none_refcount import keep_refs_alive
    from bgswap.app.settings import EngineSettings, Settings

    app = QApplication(sys.argv[:1])
    app.setApplicationName("BgSwap")
    keep_refs_alive(app)

    def wait(ms: int) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    out.mkdir(parents=True, exist_ok=True)
    win = MainWindow(Settings(engine=EngineSettings(source="demo", background="assets/backgrounds/aurora.jpg")))
    win.show()
    wait(6000)
    for name, tab in (("background", win.background_tab), ("camera", win.camera_tab), ("quality", win.quality_tab)):
        win.tabs.setCurrentWidget(tab)
        wait(700)
        win.grab().save(str(out / f"tab-{name}.png"))
    q = win.quality_tab                              # Restore defaults: every value label follows its handle
    q.threshold_slider.setValue(60)
    q.feather_slider.setValue(40)
    wait(300)
    q.restore_defaults()
    wait(1500)
    win.grab().save(str(out / "quality-after-restore-defaults.png"))
    win.vcam.button.setChecked(True)                 # without v4l2loopback: the banner and the status bar
    wait(2500)
    win.grab().save(str(out / "vcam-banner.png"))
    button = win.vcam.button                         # its tooltip, wrapped, on the screen round the window
    QToolTip.showText(button.mapToGlobal(button.rect().bottomLeft()), button.toolTip(), button)
    wait(1000)
    top_left = win.mapToGlobal(QPoint(0, 0))
    app.primaryScreen().grabWindow(0, top_left.x(), top_left.y(), 760, 260).save(str(out / "vcam-tooltip.png"))
    QToolTip.hideText()
    win.resize(1024, 600)
    wait(1000)
    win.grab().save(str(out / "quality-1024x600.png"))
    print("tray available:", win.tray is not None)
    if win.tray is not None:
        win.tray.refresh()
        geo = win.tray.icon.geometry()
        win.tray.menu.popup(geo.bottomLeft() if geo.isValid() else QPoint(900, 40))
        wait(800)
        win.tray.menu.grab().save(str(out / "tray-menu.png"))
        app.primaryScreen().grabWindow(0).save(str(out / "screen-tray.png"))
        win.tray.menu.hide()
    win.quit()
    wait(500)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/gui")))
