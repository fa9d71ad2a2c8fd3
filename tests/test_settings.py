"""Settings: one schema checked everywhere, strict --config files, a GUI file that always loads and is
never lost, and the command-line table."""
from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys

import pytest

from bgswap.app.settings import (EngineSettings, Settings, SettingsError, SettingsStore, check_settings, from_dict,
                          load_config_file, to_dict)
from bgswap.app.settings.cli_options import OPTIONS, add_options, apply_options
from bgswap.app.settings.convert import get_path


@pytest.mark.parametrize("d, field", [
    ({"fps": "fast"}, "engine.fps"),
    ({"mirror": "no"}, "engine.mirror"),
    ({"background": 123}, "engine.background"),
    ({"background": "color:blue"}, "engine.background"),
    ({"refine": {"threshold": "high"}}, "engine.refine.threshold"),
    ({"refine": {"threshold": 1.5}}, "engine.refine.threshold"),
    ({"refine": 3}, "engine.refine"),
    ({"engine": {"compute": "tpu"}}, "engine.compute"),
    ({"engine": {"input_size": 100}}, "engine.input_size"),
    ({"gui": {"blur_strength": "abc"}}, "gui.blur_strength"),
    ({"gui": {"user_backgrounds": 5}}, "gui.user_backgrounds"),
    ({"gui": {"geometry": 5}}, "gui.geometry"),
    ({"gui": {"color": "red"}}, "gui.color"),
])
def test_a_bad_value_is_named_in_strict_mode_and_skipped_in_lenient_mode(d, field):
    with pytest.raises(SettingsError, match=field.replace(".", r"\.")):
        from_dict(d, strict=True)
    settings, problems = from_dict(d, strict=False)
    assert len(problems) == 1 and field in problems[0]
    assert to_dict(settings) == to_dict(Settings())          # the bad value was not taken


def test_old_files_are_read_as_meant():
    old = {"device": "cpu", "fps": 15, "gui": {"virtual_camera": True, "vcam_device": "/dev/video4",
                                               "blur_strength": 30}}
    s, problems = from_dict(old)
    assert not problems
    assert (s.engine.compute, s.engine.fps, s.gui.blur_strength) == ("cpu", 15, 30)
    assert s.outputs.virtual_camera and s.outputs.vcam_device == "/dev/video4"


def test_per_run_fields_are_not_saved():
    s = Settings()
    s.outputs.output, s.outputs.frames = "x.mp4", 5
    saved = to_dict(s)
    assert "output" not in saved["outputs"] and "frames" not in saved["outputs"]
    assert "realtime" not in saved["engine"] and saved["engine"]["compute"] == "auto"


def test_config_file_errors_name_the_file_and_setting(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"refine": {"threshold": "high"}}')
    with pytest.raises(SettingsError, match=r"engine\.refine\.threshold.*c\.json"):
        load_config_file(path)
    path.write_text("{not json")
    with pytest.raises(SettingsError, match="not valid JSON"):
        load_config_file(path)
    with pytest.raises(SettingsError, match="does not exist"):
        load_config_file(tmp_path / "missing.json")


def test_damaged_gui_file_loads_keeps_a_backup_and_is_repaired_on_save(tmp_path):
    path = tmp_path / "settings.json"
    damaged = {"engine": {"fps": 15, "mirror": "no", "background": 123}, "gui": {"blur_strength": "abc", "geometry": 5}}
    path.write_text(json.dumps(damaged))
    store = SettingsStore(path)
    s = store.load()
    assert s.engine.fps == 15 and s.engine.mirror is False and s.gui.blur_strength == 15   # good kept, bad default
    assert len(store.problems) == 4 and any("engine.mirror" in p for p in store.problems)
    assert json.loads(store.backup_path.read_text()) == damaged                             # nothing lost
    assert store.save(s)
    again = SettingsStore(path)
    assert again.load().engine.fps == 15 and not again.problems


def test_not_json_at_all_starts_with_defaults(tmp_path):
    path = tmp_path / "settings.json"
    path.write_bytes(b"\x00\xff garbage")
    store = SettingsStore(path)
    assert to_dict(store.load()) == to_dict(Settings())
    assert store.problems and store.backup_path.read_bytes() == b"\x00\xff garbage"


def test_an_invalid_value_is_never_saved(tmp_path):
    path = tmp_path / "settings.json"
    store = SettingsStore(path)
    s = store.load()
    s.engine.fps = 20.0
    store.save(s)
    before = path.read_text()
    s.engine.fps = 1000.0
    with pytest.raises(SettingsError, match="engine.fps"):
        store.save(s)
    assert path.read_text() == before


def test_two_windows_do_not_undo_each_other(tmp_path):
    path = tmp_path / "settings.json"
    a, b = SettingsStore(path), SettingsStore(path)
    sa, sb = a.load(), b.load()
    sa.gui.color = "#112233"
    a.save(sa)
    assert not b.save(sb)                       # b changed nothing: nothing written, a's change stays
    sb.gui.blur_strength = 40
    b.save(sb)
    final = SettingsStore(path).load()
    assert (final.gui.color, final.gui.blur_strength) == ("#112233", 40)


def test_session_only_values_are_not_saved_unless_changed_again(tmp_path):
    path = tmp_path / "settings.json"
    store = SettingsStore(path)
    s = store.load()
    s.engine.background = "blur:20"
    store.save(s)
    store = SettingsStore(path)
    s = store.load()
    s.engine.background = "color:#FF0000"       # from the command line
    s.gui.show_stats = True                     # the user's own change (the default is off)
    store.save(s, {"engine.background": "color:#FF0000"})
    saved = SettingsStore(path).load()
    assert saved.engine.background == "blur:20" and saved.gui.show_stats is True
    s.engine.background = "blur:5"              # the user picked another one in the window
    store.save(s, {"engine.background": "color:#FF0000"})
    assert SettingsStore(path).load().engine.background == "blur:5"


def _hammer(path: str, field: str, n: int) -> None:
    store = SettingsStore(__import__("pathlib").Path(path))
    s = store.load()
    for i in range(n):
        setattr(s.gui, field, (i % 50) + 1 if field == "blur_strength" else f"#{i:06X}")
        store.save(s)


def test_concurrent_saves_leave_a_whole_file_with_both_changes(tmp_path):
    path = tmp_path / "settings.json"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(str(path), f, 60)) for f in ("blur_strength", "color")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    store = SettingsStore(path)
    s = store.load()
    assert not store.problems
    assert (s.gui.blur_strength, s.gui.color) == (10, "#00003B")    # each writer's last value survived
    assert not list(tmp_path.glob("*.tmp"))


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_options(p)
    return p.parse_args(argv)


def test_every_option_sets_a_real_field():
    s = Settings()
    for opt in OPTIONS:
        for path in opt.fields:
            get_path(s, path)                    # raises AttributeError for a stale table row


@pytest.mark.parametrize("argv, message", [
    (("--fps", "500"), "--fps 500: 500 must be between 1 and 240"),
    (("--background", "color:blue"), "--background color:blue"),
    (("--threshold", "2"), "--threshold 2"),
    (("--resolution", "8x8"), "--resolution 8x8"),
    (("--frames", "0"), "--frames 0"),
    (("--duration", "nan"), "--duration nan"),
    (("--input-size", "100"), "multiple of 32"),
])
def test_option_errors_name_the_option(argv, message):
    with pytest.raises(SettingsError, match=message.replace("+", r"\+")):
        apply_options(Settings(), parse(*argv))


def test_options_apply_over_the_base_and_report_what_they_set():
    base = Settings()
    s, given = apply_options(base, parse("--fps", "15", "--sync", "--compute", "cpu", "--device", "/dev/video3"))
    assert (s.engine.fps, s.engine.async_segmentation, s.engine.compute) == (15, False, "cpu")
    assert s.outputs.vcam_device == "/dev/video3"
    assert given == {"engine.fps": 15.0, "engine.async_segmentation": False, "engine.compute": "cpu",
                     "outputs.vcam_device": "/dev/video3"}
    assert base.engine.fps == 30 and base.engine.compute == "auto"          # the base is left alone
    check_settings(s, "")


def test_engine_settings_validate_names_the_field():
    with pytest.raises(SettingsError, match="engine.threads"):
        EngineSettings(threads=0).validate()


def test_gui_mode_rejects_a_bad_option_before_anything_is_saved(tmp_path):
    env = {"BGSWAP_CONFIG_DIR": str(tmp_path), "QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "bgswap.app.cli", "--background", "color:nope"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 2 and "--background color:nope" in r.stderr
    assert not (tmp_path / "settings.json").exists() and not (tmp_path / "settings.json.lock").exists()
    r = subprocess.run([sys.executable, "-m", "bgswap.app.cli", "--output", "x.mp4"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 2 and "add --no-gui" in r.stderr


# ---- hostile settings files -------------------------------------------------------------------------
def _cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bgswap.app.cli", "--no-gui", *argv], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_hostile_config_files_exit_2_naming_the_problem(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 1000 + "]" * 1000)
    typo = tmp_path / "typo.json"
    typo.write_text('{"engine": {"backgrund": "blur"}}')
    cases = [(deep, "nested too deeply"), (typo, "unknown setting engine.backgrund (did you mean engine.background?)"),
             ("/dev/zero", "not a regular file")]
    for path, message in cases:
        r = _cli("--config", str(path), "--frames", "1", "--source", "demo")
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (path, r.stderr[-500:])


def test_the_gui_file_survives_fifos_deep_nesting_and_huge_files(tmp_path):
    import os

    for name, make in (("fifo", lambda p: os.mkfifo(p)), ("deep", lambda p: p.write_text("[" * 5000 + "]" * 5000)),
                       ("huge", lambda p: p.write_bytes(b" " * (2 * 1024 * 1024)))):
        folder = tmp_path / name
        folder.mkdir()
        make(folder / "settings.json")
        store = SettingsStore(folder / "settings.json")
        settings = store.load()                           # returns: never blocks, never raises
        assert to_dict(settings) == to_dict(Settings()) and store.problems, name


def test_unknown_keys_and_a_symlinked_file_are_kept_on_save(tmp_path):
    real = tmp_path / "dotfiles" / "bgswap.json"
    real.parent.mkdir()
    real.write_text(json.dumps({"engine": {"fps": 24, "future_knob": 3}, "gui": {"theme": "dark"}, "extra": [1]}))
    link = tmp_path / "cfg" / "settings.json"
    link.parent.mkdir()
    link.symlink_to(real)
    store = SettingsStore(link)
    s = store.load()
    assert s.engine.fps == 24
    s.engine.fps = 15
    assert store.save(s)
    assert link.is_symlink()
    saved = json.loads(real.read_text())
    assert saved["engine"]["fps"] == 15 and saved["engine"]["future_knob"] == 3
    assert saved["gui"]["theme"] == "dark" and saved["extra"] == [1]


def test_a_read_only_settings_folder_still_starts(tmp_path):
    import os

    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "settings.json").write_text(json.dumps({"engine": {"fps": 20}}))
    if os.geteuid() == 0:           # root writes anywhere: make the folder a read-only mount
        if subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True).returncode:
            pytest.skip("cannot make a read-only mount here")
    else:
        folder.chmod(0o555)
    try:
        store = SettingsStore(folder / "settings.json")
        s = store.load()
        assert s.engine.fps == 20 and any("will not be saved" in p for p in store.problems)
        s.engine.fps = 25
        with pytest.raises(SettingsError, match="cannot be saved"):
            store.save(s)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(folder)])
        else:
            folder.chmod(0o755)


def test_a_huge_background_is_refused_before_it_is_decoded(tmp_path):
    """A PNG whose header says 30000x30000 (900 megapixels): refused from the header alone."""
    import struct
    import zlib

    from bgswap.inference.backgrounds import BackgroundError, read_image

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = tmp_path / "huge.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
                    + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
    with pytest.raises(BackgroundError, match="30000x30000 .900 megapixels.; the limit is 50"):
        read_image(png)
    import cv2
    import numpy as np

    big = tmp_path / "big.jpg"          # a JPEG that large is decoded reduced instead
    cv2.imwrite(str(big), np.full((6000, 9000, 3), 120, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 50])
    assert read_image(big).shape == (3000, 4500, 3)


def test_help_names_values_as_a_person_reads_them_and_mistakes_are_one_line():
    r = subprocess.run([sys.executable, "-m", "bgswap.app.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "OPT_" not in r.stdout
    assert "--source demo|N|/dev/videoN|FILE" in r.stdout and "--background SPEC" in r.stdout
    assert "log debugging detail" in r.stdout                           # -v says what it does
    for argv in (["--background", "color:#zzz", "--no-gui"], ["--fps", "abc"]):
        r = subprocess.run([sys.executable, "-m", "bgswap.app.cli", *argv], capture_output=True, text=True, timeout=60)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("bgswap: error: "), r.stderr


def test_a_damaged_group_and_a_planted_backup_link_do_not_break_saving(tmp_path):
    """{"engine": 3} is a damaged group, not a newer version's key: saving repairs it; the backup of the
    damaged file replaces a link planted at settings.json.bad instead of writing through it."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "settings.json").write_text(json.dumps({"engine": 3, "gui": {"show_stats": True}}))
    (tmp_path / "settings.json.bad").symlink_to(victim)
    store = SettingsStore(tmp_path / "settings.json")
    s = store.load()
    assert store.problems and victim.read_text() == "precious"
    assert not (tmp_path / "settings.json.bad").is_symlink() and '"engine": 3' in (tmp_path / "settings.json.bad").read_text()
    s.engine.fps = 20
    assert store.save(s)
    saved = json.loads((tmp_path / "settings.json").read_text())
    assert saved["engine"]["fps"] == 20 and saved["gui"]["show_stats"] is True


def test_edge_setting_ranges_have_one_home():
    """RefineSettings' field ranges decide what validate, the settings check and the sliders accept."""
    from bgswap.app.settings import Settings
    from bgswap.app.settings.convert import set_path
    from bgswap.app.settings.schema import SettingsError
    from bgswap.inference.refine import RefineSettings, setting_range

    lo, hi = setting_range("threshold")
    s = Settings()
    set_path(s, "engine.refine.threshold", hi)
    with pytest.raises(SettingsError, match=f"between {lo:g} and {hi:g}"):
        set_path(s, "engine.refine.threshold", hi + 0.01)
    with pytest.raises(ValueError, match="light wrap must be between 0 and 1"):
        RefineSettings(light_wrap=1.5).validate()
