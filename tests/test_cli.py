"""The command line's own answers, in-process: --version, a missing serve extra, files checked before
the model, nothing left in the settings folder by a refused run, Qt's platform plugin checked first."""
from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest

from bgswap.app import cli, qt_platform

ROOT = Path(__file__).resolve().parent.parent


def test_the_package_has_one_version_and_the_cli_prints_it(capsys):
    import bgswap

    assert bgswap.__file__ and bgswap.__version__ == version("bgswap")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"bgswap {bgswap.__version__}"


@pytest.mark.parametrize("command, module", [("serve", "uvicorn"), ("serve", "fastapi"), ("worker", "redis")])
def test_serve_without_its_extra_says_how_to_install_it_in_one_line(capsys, monkeypatch, command, module):
    monkeypatch.setitem(__import__("sys").modules, module, None)       # as if not installed
    argv = [command, "--broker", "redis://127.0.0.1:1"] if command == "worker" else [command, "--port", "1"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "bgswap[serve]"' in err and "Traceback" not in err, err
    with pytest.raises(SystemExit) as exit_:                             # --help still works without it
        cli.main([command, "--help"])
    assert exit_.value.code == 0


@pytest.mark.parametrize("gui", [False, True])
def test_a_missing_source_or_background_file_is_one_line_before_the_model_loads(capsys, monkeypatch, tmp_path, gui):
    from bgswap.app.engine import Engine

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the file was checked")

    monkeypatch.setattr(Engine, "start", no_model)
    monkeypatch.setenv("BGSWAP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    mode = [] if gui else ["--no-gui"]
    for flag in ("--source", "--background"):
        missing = tmp_path / f"missing{flag[2:]}.jpg"
        with pytest.raises(SystemExit) as exit_:
            cli.main([*mode, flag, str(missing), "--frames" if not gui else "--mirror", *(["3"] if not gui else [])])
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 2 and err == (f"bgswap: error: {flag}: {missing} does not exist "
                                                 "(bgswap --help lists the options)")
    assert not (tmp_path / "config").exists()


def test_a_refused_run_leaves_nothing_in_the_settings_folder(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("BGSWAP_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    for argv in (["--fps", "500"], ["--output", "x.mp4"], ["--background", "color:nope"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2
        assert list(tmp_path.iterdir()) == [], argv                       # no settings.json.lock either
    assert "--fps 500" in capsys.readouterr().err


def test_sync_says_what_it_does():
    """Measured: --sync alone ran the model 14.3 times a second on a 30 fps moving clip (the rate cap
    still holds), with --mask-rate 0 30.2 times: the help says so rather than 'every frame'."""
    help_text = " ".join(cli.build_parser().format_help().split())
    assert "--mask-rate 0 to segment every frame" in help_text


def test_a_missing_x11_library_prints_the_apt_line_and_exits_1(capsys, monkeypatch, tmp_path):
    """Qt would abort (exit 134) asking for libxcb-cursor0; the plugin's libraries are checked first."""
    if qt_platform.xcb_plugin() is None:
        pytest.skip("this PySide6 has no xcb plugin")
    monkeypatch.setenv("BGSWAP_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(qt_platform.sys, "platform", "linux")
    real_cdll = qt_platform.ctypes.CDLL

    def cdll(name, *a, **k):
        if name.endswith("libqxcb.so"):
            raise OSError("libxcb-icccm.so.4: cannot open shared object file: No such file or directory")
        return real_cdll(name, *a, **k)

    monkeypatch.setattr(qt_platform.ctypes, "CDLL", cdll)
    monkeypatch.setattr("bgswap.app.gui.main_window.run_gui",
                        lambda *a, **k: pytest.fail("Qt was started"), raising=False)
    assert cli.main([]) == 1
    err = capsys.readouterr().err
    assert "libxcb-icccm.so.4" in err and qt_platform.APT_LINE in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
    readme = " ".join(re.sub(r"\\\n", " ", (ROOT / "README.md").read_text()).split())
    assert qt_platform.APT_LINE in readme, "the README's apt line and app/qt_platform.py disagree"


def test_the_x11_check_is_quiet_where_qt_will_not_use_x11():
    assert not qt_platform.uses_xcb({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"})
    assert not qt_platform.uses_xcb({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"})
    assert qt_platform.uses_xcb({"QT_QPA_PLATFORM": "xcb"}) == qt_platform.sys.platform.startswith("linux")
