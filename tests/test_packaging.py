"""What an installed copy needs: bundled data found as package data, the menu entry, playable recordings."""
from __future__ import annotations

import configparser
import subprocess
import sys
from importlib.metadata import version as _metadata_version

import numpy as np
import pytest

from bgswap.app import desktop_entry
from bgswap.app.video_writer import open_video_writer
from bgswap.inference.model_meta import PADDLE_FILES, ModelMeta
from bgswap.inference.resources import assets_dir, default_model_dir, models_dir


def test_bundled_data_is_found():
    for gpu in (False, True):
        folder = default_model_dir(gpu=gpu)
        meta = ModelMeta.load(folder)
        assert (folder / "model.onnx").is_file() and all((folder / f).is_file() for f in PADDLE_FILES)
        assert not meta.int8_onnx or (folder / meta.int8_onnx).is_file()
    assert ModelMeta.load(default_model_dir()).network == "mobileseg"
    assert ModelMeta.load(default_model_dir(gpu=True)).network == "bisenetv2"
    # the CPU's model derives from PP-HumanSegV2-Lite: its licence and notice travel with it
    assert "Apache License" in (default_model_dir() / "LICENSE").read_text()
    assert "PP-HumanSegV2-Lite" in (default_model_dir() / "NOTICE").read_text()
    assert (models_dir() / "MODEL_CARD.md").is_file()
    assert len(list((assets_dir() / "backgrounds").glob("*.jpg"))) >= 5
    assert (assets_dir() / "demo" / "astronaut.jpg").is_file()
    assert (assets_dir() / "icons" / "bgswap.png").is_file()


@pytest.mark.slow
def test_desktop_entry_installs_and_uninstalls(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    written = desktop_entry.install()
    entry = tmp_path / "applications" / "bgswap.desktop"
    assert entry in written and (tmp_path / "icons/hicolor/256x256/apps/bgswap.png") in written
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(entry)
    d = parser["Desktop Entry"]
    assert d["Type"] == "Application" and d["Icon"] == "bgswap" and d["Name"] == "BgSwap"
    # the command the menu runs starts this same app
    r = subprocess.run([*d["Exec"].split(), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--no-gui" in r.stdout
    assert set(desktop_entry.uninstall()) == set(written)
    assert not entry.exists()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))      # --autostart: in the tray at login
    written = desktop_entry.install(autostart=True)
    login = tmp_path / "config" / "autostart" / "bgswap.desktop"
    assert login in written and "--tray" in login.read_text().split("Exec=", 1)[1].splitlines()[0]
    assert "--tray" not in entry.read_text()
    assert login in desktop_entry.uninstall() and not login.exists()


def _frames(n=12, w=96, h=72):
    """A smooth colour gradient with a moving disc: what a camera gives, unlike noise that 4:2:0 cannot keep."""
    import cv2

    y, x = np.mgrid[0:h, 0:w]
    base = np.dstack([x * 255 // w, y * 255 // h, np.full_like(x, 128)]).astype(np.uint8)
    frames = []
    for i in range(n):
        f = base.copy()
        cv2.circle(f, (10 + 5 * i, h // 2), 12, (240, 240, 240), -1)
        frames.append(f)
    return frames


def test_mp4_recordings_are_h264(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "out.mp4"
    writer = open_video_writer(path, 96, 72, 30)
    for f in _frames():
        writer.write(f)
    writer.close()
    assert writer.codec == "h264"
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264" and (stream.width, stream.height) == (96, 72)
        decoded = [fr.to_ndarray(format="bgr24") for fr in c.decode(video=0)]
    assert len(decoded) == 12
    assert np.abs(decoded[5].astype(int) - _frames()[5]).mean() < 6      # the content, not just a header


def test_odd_sizes_and_avi(tmp_path):
    writer = open_video_writer(tmp_path / "odd.mp4", 95, 71, 25)
    for f in _frames(w=95, h=71):
        writer.write(f)
    writer.close()
    assert (tmp_path / "odd.mp4").stat().st_size > 0
    avi = open_video_writer(tmp_path / "o.avi", 96, 72, 25)
    assert avi.codec == "MJPG"
    avi.close()
    with pytest.raises(ValueError, match=r"\.mp4 or \.avi"):
        open_video_writer(tmp_path / "o.gif", 96, 72, 25)


def test_cli_help_runs_from_another_folder(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bgswap.app.cli", "--help"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "--install-desktop-entry" in r.stdout


def test_every_code_package_is_installed():
    """A package missing from pyproject's list works in a checkout and fails after 'pip install .'."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"bgswap." + str(d.relative_to(root)).replace("/", ".") for top in ("app", "inference")
             for d in [root / top, *(root / top).rglob("*")] if (d / "__init__.py").is_file()}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


@pytest.mark.slow
def test_wheel_installs_one_top_level_package(tmp_path):
    """The wheel, installed into a fresh venv, adds exactly one importable name: bgswap (no app,
    inference or training), with the model, assets and the service page as package data."""
    import os
    import zipfile
    from pathlib import Path

    import shutil

    root = Path(__file__).resolve().parent.parent
    src = tmp_path / "src"          # setuptools writes build/ into the tree it builds: not into the checkout
    shutil.copytree(root, src, ignore=shutil.ignore_patterns(".git", ".venv*", "build", "*.egg-info", "runs",
                                                             "__pycache__", "*.mp4"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                        str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("bgswap-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        top_level = z.read(next(n for n in names if n.endswith(".dist-info/top_level.txt"))).decode().split()
    assert top_level == ["bgswap"]
    assert {n.split("/")[0] for n in names} == {"bgswap", wheel.name.split("-py3")[0] + ".dist-info"}
    for needed in ("bgswap/app/cli.py", "bgswap/inference/segmenter.py", "bgswap/models/portrait_bisenetv2/meta.json",
                   "bgswap/models/portrait_mobileseg/meta.json", "bgswap/models/portrait_mobileseg/LICENSE",
                   "bgswap/models/portrait_mobileseg/NOTICE",
                   "bgswap/assets/demo/astronaut.jpg", "bgswap/app/serve/static/index.html"):
        assert needed in names, needed
    assert not any(n.startswith("bgswap/training") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    before = set(os.listdir(site))
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300)
    added = {n for n in set(os.listdir(site)) - before if not n.endswith(".dist-info")}
    assert added == {"bgswap"}
    version = subprocess.run([str(py), "-c", "import bgswap; print(bgswap.__file__ is not None, bgswap.__version__)"],
                             capture_output=True, text=True, cwd=tmp_path, timeout=60).stdout.split()
    assert version == ["True", _metadata_version("bgswap")]      # a real package, one version: pyproject's
