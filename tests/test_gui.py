"""The desktop window, offscreen, on a real still portrait and the real model."""
from __future__ import annotations

import sys
import threading

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from bgswap.app.gui.main_window import MainWindow
from bgswap.app.settings import EngineSettings, OutputSettings, Settings, SettingsStore
from bgswap.inference.backgrounds import cover_fit

ASSET_BG = "assets/backgrounds/aurora.jpg"


@pytest.fixture
def still_path(tmp_path, portrait_frame):
    path = tmp_path / "portrait.png"
    cv2.imwrite(str(path), portrait_frame)
    return path


@pytest.fixture
def make_window(qtbot, tmp_path, monkeypatch, still_path, recording_backend):
    monkeypatch.setenv("BGSWAP_CONFIG_DIR", str(tmp_path / "config"))
    windows = []

    def make(settings: Settings | None = None) -> MainWindow:
        if settings is None:
            settings = Settings(engine=EngineSettings(source=str(still_path), background="blur"),
                                outputs=OutputSettings(vcam_backend="recording"))
        w = MainWindow(settings)
        qtbot.addWidget(w)
        w.show()
        windows.append(w)
        qtbot.waitUntil(lambda: w.preview.frames_shown >= 3, timeout=30000)
        return w

    yield make
    for w in windows:
        if w.engine.running:
            w.close()


def click_item(qtbot, gallery, kind_or_spec: str):
    from bgswap.app.gui.background_picker import ROLE_KIND, ROLE_SPEC

    for i in range(gallery.count()):
        item = gallery.item(i)
        if kind_or_spec in (item.data(ROLE_KIND), str(item.data(ROLE_SPEC))):
            gallery.scrollToItem(item)
            qtbot.mouseClick(gallery.viewport(), Qt.MouseButton.LeftButton, pos=gallery.visualItemRect(item).center())
            return
    raise AssertionError(f"no gallery item {kind_or_spec}")


def wait_new_frames(qtbot, w, n=4):
    start = w.engine.stats.frames_out
    qtbot.waitUntil(lambda: w.engine.stats.frames_out >= start + n, timeout=20000)


def blend_error(w, frame, bg) -> float:
    out, alpha = w.engine.last_output.astype(np.float32), w.engine.last_matte.full()[..., None]
    expected = alpha * frame + (1 - alpha) * bg
    return float(np.percentile(np.abs(out - expected), 99))


def test_window_starts_and_shows_live_preview(make_window, qtbot):
    w = make_window()
    img = w.preview.image
    assert img is not None and img.width() == 640 and img.height() == 480
    colors = {img.pixelColor(x, y).name() for x in range(0, 640, 80) for y in range(0, 480, 80)}
    assert len(colors) > 10                        # a real picture, not a blank
    qtbot.waitUntil(lambda: "fps" in w.stats_label.text(), timeout=5000)   # the readout updates itself
    assert w.preview.overlay == "" and not w.stats_action.isChecked()     # the tuning overlay is off by default
    qtbot.keyClick(w, Qt.Key.Key_S)                                       # S shows it
    assert "latency" in w.preview.overlay and w.settings.gui.show_stats
    qtbot.keyClick(w, Qt.Key.Key_S)
    assert w.preview.overlay == ""


def test_each_background_mode_changes_the_output(make_window, qtbot, monkeypatch, portrait_frame):
    w = make_window()
    frame = portrait_frame.astype(np.float32)
    monkeypatch.setattr("bgswap.app.gui.tabs.background_tab.QColorDialog.getColor", lambda *a, **k: QColor("#FF0000"))
    click_item(qtbot, w.gallery, "color")
    qtbot.waitUntil(lambda: w.engine.settings.background == "color:#FF0000", timeout=10000)
    wait_new_frames(qtbot, w)
    assert blend_error(w, frame, np.array([0, 0, 255], np.float32)) < 4

    click_item(qtbot, w.gallery, "none")
    qtbot.waitUntil(lambda: w.engine.background.kind == "none", timeout=10000)
    wait_new_frames(qtbot, w)
    np.testing.assert_array_equal(w.engine.last_output, portrait_frame)

    bg_path = str(w.gallery.item(3).data(Qt.ItemDataRole.UserRole))
    click_item(qtbot, w.gallery, bg_path)
    qtbot.waitUntil(lambda: w.engine.background.kind == "image", timeout=10000)
    wait_new_frames(qtbot, w)
    bg = cover_fit(cv2.imread(bg_path), 640, 480).astype(np.float32)
    assert blend_error(w, frame, bg) < 4

    click_item(qtbot, w.gallery, "blur")
    qtbot.waitUntil(lambda: w.engine.background.kind == "blur", timeout=10000)
    wait_new_frames(qtbot, w)
    out = w.engine.last_output
    assert not np.array_equal(out, portrait_frame)
    assert w.gallery.currentItem().text() == "Blur"


def test_bad_background_keeps_the_previous_one(make_window, qtbot, tmp_path):
    w = make_window()
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a picture")
    before = w.engine.settings.background
    count = w.gallery.count()
    w.add_backgrounds([str(bad)])
    qtbot.waitUntil(lambda: "broken.png" in w.banner.text(), timeout=10000)
    assert "not a readable image" in w.banner.text() and w.banner.isVisible()
    assert w.engine.settings.background == before and w.gallery.count() == count


def test_added_background_is_applied_and_remembered(make_window, qtbot, tmp_path):
    w = make_window()
    path = tmp_path / "mine.png"
    cv2.imwrite(str(path), np.full((90, 160, 3), (10, 200, 30), np.uint8))
    w.add_backgrounds([str(path)])
    qtbot.waitUntil(lambda: w.engine.settings.background == str(path), timeout=10000)
    assert str(path) in w.settings.gui.user_backgrounds
    w.close()
    assert str(path) in SettingsStore().load().gui.user_backgrounds


def test_virtual_camera_toggle_drives_the_backend(make_window, qtbot, recording_backend):
    w = make_window()
    qtbot.mouseClick(w.vcam.button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.vcam.state == "on", timeout=10000)
    cam = recording_backend.instances[-1]
    qtbot.waitUntil(lambda: len(cam.frames) >= 10, timeout=10000)
    assert cam.frames[-1].shape == (480, 640, 3)
    assert "on" in w.vcam.button.text() and "/dev/video-recording" in w.vcam.label.text()
    qtbot.keyClick(w, Qt.Key.Key_V)                       # shortcut turns it off
    qtbot.waitUntil(lambda: cam.closed, timeout=10000)
    assert w.vcam.state == "off" and not w.vcam.button.isChecked()


def test_virtual_camera_unavailable_shows_reason_and_fix(make_window, qtbot, recording_backend):
    w = make_window()
    recording_backend.fail_with = "no loopback device"
    w.vcam.button.setChecked(True)
    qtbot.waitUntil(lambda: w.vcam.state == "unavailable", timeout=10000)
    assert not w.vcam.button.isChecked()
    assert "no loopback device" in w.banner.text()
    assert "modprobe v4l2loopback" in w.banner.text() or "OBS" in w.banner.text()
    assert w.engine.stats.frames_out > 0 and w.engine.running    # the preview keeps running


def test_settings_persist_across_a_restart(make_window, qtbot):
    w = make_window()
    w.choose_background("color:#123456")
    qtbot.waitUntil(lambda: w.engine.settings.background == "color:#123456", timeout=10000)
    w.camera_tab.mirror_view.setChecked(True)
    w.quality_tab.threshold_slider.setValue(62)
    w.quality_tab.largest.setChecked(True)
    w.quality_tab.colour_edges.setChecked(False)
    assert w.engine.refiner.settings.colour_edges is False          # applied to the running engine
    w.quality_tab.decontaminate.setChecked(True)
    w.quality_tab.wrap_slider.setValue(40)
    assert w.engine.compositor.settings.decontaminate and w.engine.compositor.settings.light_wrap == pytest.approx(0.4)
    w.resize(700, 500)           # the offscreen screen is 800x600
    w.close()
    saved = SettingsStore().load()
    assert saved.engine.background == "color:#123456" and saved.gui.preview_mirror
    assert saved.engine.refine.threshold == pytest.approx(0.62) and saved.engine.refine.largest_person_only
    assert saved.engine.refine.colour_edges is False
    assert saved.engine.refine.decontaminate and saved.engine.refine.light_wrap == pytest.approx(0.4)
    w2 = make_window(saved)
    assert not w2.quality_tab.colour_edges.isChecked()
    assert w2.quality_tab.decontaminate.isChecked() and w2.quality_tab.wrap_slider.value() == 40
    assert w2.engine.settings.background == "color:#123456"
    assert w2.quality_tab.threshold_slider.value() == 62 and w2.camera_tab.mirror_view.isChecked()
    assert (w2.width(), w2.height()) == (700, 500)


def test_shortcuts_cycle_backgrounds_and_pause(make_window, qtbot):
    w = make_window()
    before = w.engine.settings.background
    qtbot.keyClick(w, Qt.Key.Key_B)
    qtbot.waitUntil(lambda: w.engine.settings.background != before, timeout=10000)
    qtbot.keyClick(w, Qt.Key.Key_Space)
    assert w.engine.paused
    wait_new_frames(qtbot, w, 2)            # a frame already being processed may still land
    frozen = w.engine.last_output
    wait_new_frames(qtbot, w)
    assert w.engine.last_output is frozen
    qtbot.keyClick(w, Qt.Key.Key_Space)
    assert not w.engine.paused


def test_closing_stops_every_thread(make_window, qtbot):
    w = make_window()
    w.vcam.button.setChecked(True)
    qtbot.waitUntil(lambda: w.vcam.state == "on", timeout=10000)
    w.close()
    names = {t.name for t in threading.enumerate()}
    assert not names & {"capture", "segment", "process", "virtual-camera"}
    assert not w.engine.running


def test_add_item_and_drag_and_drop_add_backgrounds(make_window, qtbot, monkeypatch, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    w = make_window()
    picked = tmp_path / "picked.png"
    cv2.imwrite(str(picked), np.full((90, 160, 3), 40, np.uint8))
    monkeypatch.setattr("bgswap.app.gui.tabs.background_tab.QFileDialog.getOpenFileName", lambda *a, **k: (str(picked), ""))
    click_item(qtbot, w.gallery, "add")
    qtbot.waitUntil(lambda: w.engine.settings.background == str(picked), timeout=10000)

    dropped = tmp_path / "dropped.png"
    cv2.imwrite(str(dropped), np.full((90, 160, 3), 90, np.uint8))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(dropped))])
    ev = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                    Qt.KeyboardModifier.NoModifier)
    w.gallery.dropEvent(ev)
    qtbot.waitUntil(lambda: w.engine.settings.background == str(dropped), timeout=10000)
    assert w.gallery.item_for_spec(str(dropped)) is not None
    assert w.settings.gui.user_backgrounds == [str(picked), str(dropped)]


def test_painting_the_preview_keeps_none_alive(qtbot, portrait_frame):
    """PySide6 6.12.0 on Python 3.11 drops a reference to None per void call (drawImage, fillRect ...);
    painting must not let None's count fall, or the app aborts after a minute at 30 fps."""
    import sys

    from bgswap.app.gui.preview import PreviewWidget

    w = PreviewWidget()
    qtbot.addWidget(w)
    w.resize(480, 360)
    w.overlay = "out 30.0 fps\nmask 25.0/s"
    w.show_frame(portrait_frame)
    w.grab()
    headroom = [None] * 100_000           # on an affected build, fail the assert below instead of aborting pytest
    before = sys.getrefcount(None)
    for i in range(3000):
        w.mirror_view = bool(i % 2)       # both paint paths
        w.grab()                          # paints through paintEvent; returns a pixmap, so is no void call itself
    assert sys.getrefcount(None) >= before - 50   # ~10 void calls per paint would lose ~30,000
    del headroom


def test_signals_emitted_from_threads_keep_true_alive(qtbot):
    """The same builds lose a reference to True per ``Signal.emit``: the engine's frames arrive that way."""
    import sys

    from bgswap.app.gui.bridge import FrameBridge
    from bgswap.app.gui.none_refcount import none_ref_guard

    bridge = FrameBridge()
    got = []
    bridge.frame_ready.connect(lambda: got.append(1))
    headroom = [True] * 100_000
    guard = none_ref_guard()
    guard.top_up()
    before = sys.getrefcount(True)
    for _ in range(3000):
        bridge.frame_ready.emit()
    guard.top_up()                         # what the window's timer does every 100 ms
    assert len(got) == 3000
    assert sys.getrefcount(True) >= before - 50
    del headroom


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="signals")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_closes_the_window_like_its_close_button(tmp_path, sig):
    """Logout or Ctrl+C: settings are saved (with the last change), threads stop, no traceback."""
    import json
    import os
    import signal
    import subprocess

    from tests.processes import wait_for_line

    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "settings.json").write_text(json.dumps({"engine": {"source": "demo", "background": "blur:9"}}))
    env = dict(os.environ, BGSWAP_CONFIG_DIR=str(cfg), QT_QPA_PLATFORM="offscreen")
    p = subprocess.Popen([sys.executable, "-m", "bgswap.app.cli"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    err = wait_for_line(p, "first frame out")
    p.send_signal(getattr(signal, sig))
    err += p.communicate(timeout=30)[1]
    assert p.returncode == 128 + getattr(signal, sig), err
    assert "Traceback" not in err
    saved = json.loads((cfg / "settings.json").read_text())
    assert saved["gui"]["geometry"] and saved["engine"]["background"] == "blur:9"


def test_a_damaged_settings_file_opens_the_window_with_a_banner(qtbot, tmp_path, monkeypatch, recording_backend):
    import json

    monkeypatch.setenv("BGSWAP_CONFIG_DIR", str(tmp_path))
    (tmp_path / "settings.json").write_text(json.dumps(
        {"engine": {"source": "demo", "mirror": "no", "background": 123}, "gui": {"user_backgrounds": 5}}))
    w = MainWindow(autostart=False)
    qtbot.addWidget(w)
    assert w.banner.isVisibleTo(w) and "settings.json.bad" in w.banner.text()
    assert (tmp_path / "settings.json.bad").exists()
    assert w.engine.settings.source == "demo" and w.engine.settings.mirror is False
    w.close()


def test_thousands_of_user_backgrounds_load_without_a_thread_each(qtbot, tmp_path):
    """3,000 saved backgrounds: the gallery fills at once, finds an entry without scanning, and reads
    the thumbnails one at a time (a thread per file used to hang the window)."""
    import os
    import threading

    import cv2
    import numpy as np

    from PySide6.QtWidgets import QApplication

    from bgswap.app.gui.background_picker import BackgroundGallery
    from bgswap.app.gui.none_refcount import keep_refs_alive

    guard = keep_refs_alive(QApplication.instance())      # as the window does (PySide6 6.12's lost references)
    first = tmp_path / "bg0.jpg"
    cv2.imwrite(str(first), np.full((90, 160, 3), 200, np.uint8))
    paths = [str(first)]
    for i in range(1, 3000):
        os.link(first, tmp_path / f"bg{i}.jpg")
        paths.append(str(tmp_path / f"bg{i}.jpg"))
    threads_before = threading.active_count()
    g = BackgroundGallery()
    qtbot.addWidget(g)
    g.populate([], paths)
    assert g.count() == 3 + 3000 + 1 and g.item(g.count() - 1).data(Qt.ItemDataRole.UserRole + 1) == "add"
    assert threading.active_count() <= threads_before + 1
    assert g.item_for_spec(paths[2999]) is g.item(3 + 2999)
    qtbot.waitUntil(lambda: not g._thumbs and not g._reading, timeout=120_000)
    assert g.item(3 + 2999).icon().pixmap(16, 16).toImage().pixelColor(8, 8).red() > 150     # the thumbnail
    guard.top_up()


def test_restore_defaults_restores_every_field_and_the_preset_label_follows_the_knobs(make_window, qtbot):
    """After Battery saver, Restore defaults gives back Balanced's knobs and label (not a mix); a knob
    changed by hand makes the label Custom, and the saved file says so."""
    import json

    w = make_window()
    q = w.quality_tab
    s = w.engine.settings
    q.choose_preset("battery")
    qtbot.waitUntil(lambda: s.mask_rate == 6.0 and q.preset_box.currentData() == "battery", timeout=30000)
    q.threshold_slider.setValue(70)
    assert s.preset == "battery"                       # the threshold is not a preset knob
    q.restore_defaults()
    d = EngineSettings()
    qtbot.waitUntil(lambda: s.input_size == d.input_size and s.refine.threshold == d.refine.threshold
                    and q.preset_box.currentData() == "balanced", timeout=30000)      # applied and shown
    assert (s.preset, s.threads, s.mask_rate, s.passes, s.refine.colour_edges) == \
        (d.preset, d.threads, d.mask_rate, d.passes, d.refine.colour_edges)
    assert q.preset_box.currentData() == "balanced" and q.threshold_slider.value() == round(d.refine.threshold * 100)
    assert q.size_box.currentData() == q.model_size
    q.size_box.setCurrentIndex(q.size_box.findData(q.model_size))
    q._input_size_chosen(0)                            # choosing the model's own size is the default, not Custom
    qtbot.wait(200)
    assert s.input_size is None and s.preset == "balanced"
    q.colour_edges.setChecked(True)                    # Balanced's knobs with one changed: Custom
    assert s.preset == "custom" and q.preset_box.currentText() == "Custom"
    w.close()
    saved = json.loads(w.store.path.read_text())["engine"]
    assert saved["preset"] == "custom" and saved["refine"]["colour_edges"] is True
    q.colour_edges.setChecked(False)
    assert s.preset == "balanced" and q.preset_box.findData("custom") < 0


def test_every_control_can_be_read_at_1024x600(make_window, qtbot, tmp_path):
    """The camera box shows its whole label, every slider shows its value (blur up to 100, as on the
    command line), the threshold explains itself, and the gallery opens with None and Blur in view
    even when the chosen background is far down the list."""
    import shutil

    from bgswap.app.gui.background_picker import ROLE_KIND
    from bgswap.inference.resources import bundled_backgrounds

    user = []
    for i in range(40):
        p = tmp_path / f"mine{i}.jpg"
        shutil.copy(bundled_backgrounds()[0], p)
        user.append(str(p))
    settings = Settings(engine=EngineSettings(source="demo", background=user[-1]),
                        outputs=OutputSettings(vcam_backend="recording"))
    settings.gui.user_backgrounds = user
    w = make_window(settings)
    w.resize(1024, 600)
    for tab in (w.background_tab, w.camera_tab, w.quality_tab):
        w.tabs.setCurrentWidget(tab)
        qtbot.wait(50)
        if tab is w.background_tab:
            g = tab.gallery
            none = next(g.item(i) for i in range(g.count()) if g.item(i).data(ROLE_KIND) == "none")
            assert g.viewport().rect().contains(g.visualItemRect(none)), "None is scrolled out of view"
            assert tab.blur_slider.maximum() == 100 and tab.blur_slider.value_label.text() == str(
                tab.blur_slider.value())
        if tab is w.camera_tab:
            box = tab.source_box
            text = box.itemText(box.findData("demo"))
            box.setCurrentIndex(box.findData("demo"))
            assert box.width() >= box.sizeHint().width(), (box.width(), box.sizeHint().width(), text)
    q = w.quality_tab
    q.threshold_slider.setValue(63)
    assert q.threshold_slider.value_label.text() == "0.63" and q.threshold_slider.toolTip()
    for slider in (q.edge_slider, q.temporal_slider, q.feather_slider):
        assert slider.value_label.text() and slider.toolTip()


def test_a_missing_virtual_camera_shows_before_it_is_clicked_and_clears_when_it_appears(
        make_window, qtbot, monkeypatch, still_path):
    """Linux without v4l2loopback: the button reads unavailable at start with the fix on hover; once a
    loopback device appears, the next probe turns it back to off and lists the device."""
    import platform

    from bgswap.app import sinks
    from bgswap.app.gui import virtual_camera

    if platform.system() != "Linux":
        pytest.skip("the cheap probe looks at Linux's v4l2loopback")
    devices: list[str] = []
    monkeypatch.setattr("bgswap.app.sources.list_virtual_cameras", lambda: list(devices))
    monkeypatch.setattr(virtual_camera, "list_virtual_cameras", lambda: list(devices))
    real_exists = sinks.Path.exists
    monkeypatch.setattr(sinks.Path, "exists", lambda p: False if str(p) == "/sys/module/v4l2loopback"
                        else real_exists(p))
    settings = Settings(engine=EngineSettings(source=str(still_path), background="blur"),
                        outputs=OutputSettings(vcam_backend=None))
    w = make_window(settings)
    assert w.vcam.state == "unavailable" and "unavailable" in w.vcam.button.text()
    assert "modprobe v4l2loopback" in w.vcam.label.toolTip()
    devices.append("/dev/video9")                          # the module was loaded meanwhile
    w.vcam.probe()                                         # what the timer does every few seconds
    assert w.vcam.state == "off" and w.vcam.device_box.findData("/dev/video9") >= 0


def test_switching_presets_fifty_times_holds_memory(make_window, qtbot):
    """Each preset change builds a new model off the GUI thread; the old one's memory must go back
    (it used to pile up in the worker threads' heaps: 185 MB to 232 MB in four changes)."""
    import re

    def rss_mb() -> float:
        return int(re.search(r"VmRSS:\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024

    w = make_window()
    q = w.quality_tab
    names = ["battery", "quality", "balanced"]

    def switch(name: str) -> None:
        q.choose_preset(name)
        qtbot.waitUntil(lambda: w.engine.settings.preset == name and q.preset_box.currentData() == name,
                        timeout=30000)
        frames = w.preview.frames_shown
        qtbot.waitUntil(lambda: w.preview.frames_shown >= frames + 2, timeout=30000)

    for name in names:                                     # every preset built once: the start
        switch(name)
    start = rss_mb()
    for i in range(50):
        switch(names[i % 3])
    assert rss_mb() <= start * 1.10, (start, rss_mb())


def test_the_tray_menu_drives_the_app_and_closing_keeps_the_camera_running(qtbot, tmp_path, monkeypatch,
                                                                          still_path, recording_backend):
    """The tray's menu switches the background, the virtual camera and pause; closing the window with
    the camera on hides it (the camera keeps sending) and says so once; Quit ends everything."""
    import json

    monkeypatch.setenv("BGSWAP_CONFIG_DIR", str(tmp_path / "config"))
    settings = Settings(engine=EngineSettings(source=str(still_path), background="blur"),
                        outputs=OutputSettings(vcam_backend="recording"))
    w = MainWindow(settings, tray=True)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.preview.frames_shown >= 3, timeout=30000)
    tray = w.tray
    tray.refresh()
    names = [a.text() for a in tray.backgrounds.actions()]
    assert names[:2] == ["None", "Blur"] and "aurora" in names and "Add..." not in names
    next(a for a in tray.backgrounds.actions() if a.text() == "aurora").trigger()
    qtbot.waitUntil(lambda: w.engine.settings.background.endswith("aurora.jpg"), timeout=30000)
    tray.vcam_action.trigger()
    qtbot.waitUntil(lambda: w.vcam.state == "on", timeout=30000)
    cam = recording_backend.instances[-1]
    tray.pause_action.trigger()
    assert w.engine.paused
    tray.pause_action.trigger()
    tray.frame_action.trigger()                        # auto-framing, from the tray as from the Quality tab
    assert w.engine.settings.auto_frame and w.quality_tab.auto_frame.isChecked()
    frames = w.preview.frames_shown
    qtbot.waitUntil(lambda: w.preview.frames_shown > frames + 3, timeout=30000)     # framed frames flow
    w.quality_tab.auto_frame.setChecked(False)
    tray.refresh()
    assert not w.engine.settings.auto_frame and not tray.frame_action.isChecked()
    w.close()                                          # the window's close button, during a call
    assert not w.isVisible() and w.engine.running and w.vcam.state == "on"
    sent = len(cam.frames)
    qtbot.waitUntil(lambda: len(cam.frames) > sent + 5, timeout=30000)   # still publishing
    assert json.loads((tmp_path / "config" / "settings.json").read_text())["gui"]["tray_hint_shown"] is True
    tray.refresh()
    assert tray.show_action.text() == "Show window"
    tray.show_action.trigger()
    assert w.isVisible()
    tray.quit_action.trigger()
    assert not w.engine.running and cam.closed


def test_without_a_tray_closing_the_window_ends_the_app(make_window, qtbot):
    w = make_window()
    assert w.tray is None                               # offscreen Qt has no tray
    w.vcam.button.setChecked(True)
    qtbot.waitUntil(lambda: w.vcam.state == "on", timeout=30000)
    w.close()
    assert not w.engine.running


def test_started_in_the_tray_with_the_window_hidden_it_goes_idle(qtbot, tmp_path, monkeypatch, still_path,
                                                                 recording_backend, caplog):
    """``bgswap --tray``: only the icon, the virtual camera off. Nobody sees a frame, so within 5 s the
    app logs idle and stops processing (it used to run at ~36 % of a core all day); showing the window
    brings the picture back."""
    import logging
    import time

    from bgswap.app.gui.main_window import open_window

    caplog.set_level(logging.INFO)
    monkeypatch.setenv("BGSWAP_CONFIG_DIR", str(tmp_path / "config"))
    settings = Settings(engine=EngineSettings(source=str(still_path), background="blur"),
                        outputs=OutputSettings(vcam_backend="recording"))
    started = time.monotonic()
    w = open_window(settings, in_tray=True, tray=True)           # what run_gui does for --tray
    qtbot.addWidget(w)
    assert w.tray is not None and not w.isVisible()
    qtbot.waitUntil(lambda: w.engine.stats.idle, timeout=30000)
    took = time.monotonic() - started
    assert took < 5, f"idle only after {took:.1f} s"
    assert any("idle" in r.getMessage() for r in caplog.records)
    qtbot.wait(300)                                               # a frame already in the pipeline may finish
    out = w.engine.stats.frames_out
    qtbot.wait(1500)
    assert w.engine.stats.frames_out == out and w.engine.stats.idle      # nothing made while idle
    w.tray.toggle_window()                                        # the tray's Show window
    qtbot.waitUntil(lambda: w.engine.stats.frames_out > out + 3 and not w.engine.stats.idle, timeout=10000)
    w.quit()
    assert not w.engine.running


def test_restore_defaults_refreshes_every_value_label(make_window, qtbot):
    """The labels beside the sliders follow Restore defaults (they were left at the old values: the
    sliders are moved with their signals blocked)."""
    w = make_window()
    q = w.quality_tab
    sliders = (q.edge_slider, q.temporal_slider, q.threshold_slider, q.feather_slider, q.wrap_slider)
    for sl in sliders:
        sl.setValue(sl.maximum() - 1 if sl.value() != sl.maximum() - 1 else sl.minimum())
    q.threshold_slider.setValue(60)
    assert q.threshold_slider.value_label.text() == "0.60"
    q.restore_defaults()
    d = EngineSettings().refine
    qtbot.waitUntil(lambda: q.threshold_slider.value() == round(d.threshold * 100), timeout=30000)
    assert q.threshold_slider.value_label.text() == f"{d.threshold:.2f}"
    for sl in sliders:
        shown = sl.value_label.text()
        sl.show_value()                                           # what the label should say for the handle
        assert sl.value_label.text() == shown, sl.toolTip()


def test_a_virtual_camera_error_is_short_with_its_fix_once(make_window, qtbot, recording_backend):
    """pyvirtualcam's own text (backend names, its advice) becomes one sentence with the fix once; the
    status bar's text fits beside the stats; the tooltip wraps to a readable width."""
    import platform
    import re

    from PySide6.QtGui import QFontMetrics
    from PySide6.QtWidgets import QToolTip

    w = make_window()
    recording_backend.fail_with = ("'v4l2loopback' backend: No v4l2 loopback device found at /dev/video[0-99]. "
                                   "Did you run 'modprobe v4l2loopback'? See also pyvirtualcam's documentation.")
    w.vcam.button.setChecked(True)
    qtbot.waitUntil(lambda: w.vcam.state == "unavailable", timeout=10000)
    message = w.banner.text()
    assert "backend" not in message and "pyvirtualcam" not in message and "Did you run" not in message
    if platform.system() == "Linux":
        assert message.startswith("No virtual camera device: run `sudo modprobe v4l2loopback devices=1 "
                                  "exclusive_caps=1")
    assert message.count("modprobe") + message.count("OBS") == 1
    assert w.banner.text() == message
    status = w.statusBar().currentMessage()
    assert status and w.statusBar().fontMetrics().horizontalAdvance(status) <= w.status_room()
    tip = w.vcam.button.toolTip()
    lines = [re.sub(r"<[^>]+>", "", line) for line in tip.split("<br>")]
    fm = QFontMetrics(QToolTip.font())
    assert len(lines) > 1 and 250 <= max(fm.horizontalAdvance(line) for line in lines) <= 480, lines
    assert tip.count("modprobe") + tip.count("OBS") == 1
