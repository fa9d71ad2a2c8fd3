"""Run the desktop window offscreen on the demo source for a while and report whether it held up.

    python benchmarks/gui_soak.py [--minutes 5]

Opens the real ``MainWindow`` (settings in a temporary folder) the way ``bgswap`` does, with
Qt's offscreen platform, and prints every 30 s and at the end: frames painted, the reference
count of ``None`` (a PySide6 build that loses one per call would drive it to zero and abort the
process), the references the guard put back, and the resident memory.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0)
    args = ap.parse_args()
    os.environ["BGSWAP_CONFIG_DIR"] = tempfile.mkdtemp(prefix="bgswap-soak-")

    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from bgswap.app.gui.main_window import MainWindow
    from bgswap.app.gui.none_refcount import keep_refs_alive
    from bgswap.app.settings import EngineSettings, Settings

    app = QApplication(sys.argv[:1])
    guard = keep_refs_alive(app)
    win = MainWindow(Settings(engine=EngineSettings(source="demo")))
    win.resize(1100, 700)
    win.show()
    t0 = time.time()
    print(f"PySide6 {pyside_version}, Python {sys.version.split()[0]}, guard active: {guard.active}; "
          f"None refcount {sys.getrefcount(None)}, RSS {rss_mb():.0f} MB", flush=True)

    def report() -> None:
        print(f"{time.time() - t0:6.0f} s: frames painted {win.preview.frames_shown}, None refcount "
              f"{sys.getrefcount(None)}, put back {guard.restored}, RSS {rss_mb():.0f} MB", flush=True)

    ticker = QTimer(app, interval=30_000, timeout=report)
    ticker.start()
    QTimer.singleShot(int(args.minutes * 60_000), win.close)
    QTimer.singleShot(int(args.minutes * 60_000) + 500, app.quit)
    rc = app.exec()
    report()
    fps = win.preview.frames_shown / max(1e-9, time.time() - t0)
    print(f"done: exit {rc}, {win.preview.frames_shown} frames painted in {time.time() - t0:.0f} s ({fps:.1f} fps)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
