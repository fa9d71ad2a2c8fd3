"""The headless front end as a user runs it: real processes, real files, real signals."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from bgswap.inference.model_meta import ModelMeta
from bgswap.inference.resources import default_model_dir

from tests.processes import wait_for_line

pytestmark = pytest.mark.slow        # real processes or training: 'pytest -m "not slow"' skips them

ROOT = Path(__file__).resolve().parent.parent


def run(*args, timeout=120):
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "--no-gui", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    return n


def test_demo_to_file_with_bundled_background(tmp_path):
    out = tmp_path / "out.mp4"
    r = run("--source", "demo", "--output", str(out), "--frames", "45", "--stats-every", "0.5")
    assert r.returncode == 0, r.stderr
    assert count_frames(out) == 45                      # exactly what was asked
    assert "fps" in r.stderr and "model" in r.stderr     # stats are logged
    meta = ModelMeta.load(default_model_dir())          # the CPU's default model, int8 where it ships one
    assert f"onnxruntime/cpu/{'int8' if meta.int8_onnx else 'fp32'}" in r.stderr
    assert f"model {meta.name} v{meta.version}" in r.stderr


def test_precision_option_reaches_the_model(tmp_path):
    r = run("--source", "demo", "--output", str(tmp_path / "o.mp4"), "--frames", "30", "--stats-every", "0.3",
            "--precision", "fp32")
    assert r.returncode == 0, r.stderr
    assert "onnxruntime/cpu/fp32" in r.stderr and "int8" not in r.stderr.replace("--precision", "")
    r = run("--precision", "fp16")
    assert r.returncode == 2 and "fp16" in r.stderr


def test_bad_background_is_a_clear_error(tmp_path):
    r = run("--source", "demo", "--background", str(tmp_path / "missing.png"), "--frames", "5")
    assert r.returncode == 2
    assert "missing.png does not exist" in r.stderr


def test_duration_gives_that_much_video(tmp_path):
    """--duration 2 at 15 fps records 2 s of video, 30 frames from the first frame out (--duration 10 gave
    9.3 s: the clock started before the first frame, and frames a busy machine dropped shortened it)."""
    out = tmp_path / "two_seconds.avi"
    r = run("--source", "demo", "--fps", "15", "--output", str(out), "--duration", "2")
    assert r.returncode == 0, r.stderr
    assert count_frames(out) == 30


def test_bad_cli_values_are_rejected():
    r = run("--resolution", "big")
    assert r.returncode == 2 and "640x480" in r.stderr
    r = run("--threshold", "3")
    assert r.returncode == 2 and "between 0.1 and 0.9" in r.stderr


def test_missing_model_names_the_file(tmp_path):
    r = run("--model-dir", str(tmp_path), "--frames", "5")
    assert r.returncode == 2 and "meta.json" in r.stderr


def test_virtual_camera_missing_only_output_exits_with_the_fix():
    r = run("--source", "demo", "--virtual-cam", "--device", "/dev/video99", "--frames", "5")
    assert r.returncode == 3
    assert "modprobe v4l2loopback" in r.stderr or "OBS" in r.stderr


def test_virtual_camera_missing_keeps_other_outputs_running(tmp_path):
    out = tmp_path / "o.avi"
    r = run("--source", "demo", "--virtual-cam", "--device", "/dev/video99", "--output", str(out),
            "--frames", "20")
    assert r.returncode == 0, r.stderr
    assert "modprobe v4l2loopback" in r.stderr or "OBS" in r.stderr
    assert count_frames(out) == 20


def test_config_file_and_errors(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"background": "color:#00FF00", "refine": {"threshold": 0.4}}')
    out = tmp_path / "o.avi"
    r = run("--config", str(cfg), "--output", str(out), "--frames", "10")
    assert r.returncode == 0, r.stderr
    cfg.write_text("{oops")
    r = run("--config", str(cfg))
    assert r.returncode == 2 and "not valid JSON" in r.stderr


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_sigterm_stops_cleanly_and_finalises_the_file(tmp_path):
    out = tmp_path / "sig.avi"
    p = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--no-gui", "--source", "demo", "--output", str(out)],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = wait_for_line(p, "first frame out")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(p.stat().st_size for p in tmp_path.glob(".sig.*.partial.avi")) < 600_000:
        time.sleep(0.1)                                  # some frames are in the file
    p.send_signal(signal.SIGTERM)
    err += p.communicate(timeout=30)[1]
    assert p.returncode == 143, err                      # 128 + SIGTERM: stopped, not finished
    assert "wrote" in err and count_frames(out) > 10
    assert "Traceback" not in err


def test_gui_without_a_display_says_what_to_do():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, str(ROOT / "main.py")], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "--no-gui" in r.stderr


def test_a_run_that_cannot_start_leaves_no_output_file(tmp_path):
    out = tmp_path / "never.mp4"
    r = run("--source", str(tmp_path / "missing.mp4"), "--output", str(out), "--frames", "5")
    assert r.returncode == 2 and "missing.mp4" in r.stderr
    assert not out.exists()


def test_an_existing_output_is_kept_unless_overwrite_is_given(tmp_path):
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"the user's earlier recording")
    r = run("--source", "demo", "--output", str(out), "--frames", "5")
    assert r.returncode == 2 and "--overwrite" in r.stderr
    assert out.read_bytes() == b"the user's earlier recording"
    r = run("--source", "demo", "--output", str(out), "--frames", "5", "--overwrite")
    assert r.returncode == 0 and count_frames(out) == 5


def test_the_source_file_is_never_the_output(tmp_path):
    src = tmp_path / "clip.avi"
    assert run("--source", "demo", "--output", str(src), "--frames", "10").returncode == 0
    before = src.read_bytes()
    r = run("--source", str(src), "--output", str(tmp_path / "." / "clip.avi"), "--frames", "5", "--overwrite")
    assert r.returncode == 2 and "is the source file" in r.stderr
    assert src.read_bytes() == before


@pytest.mark.parametrize("option, value", [("--frames", "0"), ("--frames", "-5"), ("--duration", "0"),
                                           ("--duration", "-1"), ("--duration", "nan"), ("--duration", "inf")])
def test_counts_and_durations_must_be_positive_and_finite(option, value):
    r = run("--source", "demo", option, value)
    assert r.returncode == 2 and option in r.stderr


def popen(*args, env=None):
    return subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--no-gui", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.skipif(os.name != "posix", reason="signals")
@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5])
def test_an_early_signal_leaves_a_playable_file_or_none_and_no_traceback(tmp_path, delay):
    out = tmp_path / "early.mp4"
    p = popen("--source", "demo", "--output", str(out))
    time.sleep(delay)                                    # while it is still importing, loading, starting
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert [f.name for f in tmp_path.iterdir()] in ([], ["early.mp4"])     # no stub, partial or lock
    if out.exists():
        assert count_frames(out) > 0


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_sighup_reloads_the_config_without_restarting_the_camera(tmp_path):
    cfg = tmp_path / "kiosk.json"
    cfg.write_text('{"background": "blur:10"}')
    p = popen("--source", "demo", "--config", str(cfg), "--stats-every", "1")
    try:
        deadline = time.time() + 60
        lines = []
        while time.time() < deadline:
            lines.append(p.stderr.readline())
            if "fps" in lines[-1]:
                break
        cfg.write_text('{"background": "color:#FF0000", "refine": {"threshold": 0.6}, "fps": 15}')
        p.send_signal(signal.SIGHUP)
        while time.time() < deadline:
            lines.append(p.stderr.readline())
            if "restart to apply" in lines[-1]:
                break
        p.send_signal(signal.SIGTERM)
        rest = p.communicate(timeout=30)[1]
    finally:
        p.kill()
    log = "".join(lines) + rest
    assert "background=color:#FF0000" in log and "refine.threshold=0.6" in log
    assert "WARNING bgswap: fps changed: restart to apply" in log    # the source is not among the changes
    assert p.returncode == 143


def test_two_runs_cannot_write_one_file(tmp_path):
    out = tmp_path / "shared.avi"
    first = popen("--source", "demo", "--output", str(out), "--duration", "20")
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (tmp_path / ".shared.avi.lock").exists():
            time.sleep(0.2)
        r = run("--source", "demo", "--output", str(out), "--frames", "5", "--overwrite")
        assert r.returncode == 2 and "another bgswap is writing" in r.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert count_frames(out) > 0 and not (tmp_path / ".shared.avi.lock").exists()


def test_a_file_source_emptied_while_playing_ends_the_run_with_an_error(tmp_path):
    src = tmp_path / "clip.avi"
    assert run("--source", "demo", "--output", str(src), "--frames", "20").returncode == 0
    p = popen("--source", str(src), "--duration", "60", "--stats-every", "1")
    try:
        wait_for_line(p, "first frame out")
        wait_for_line(p, "fps, out")                      # a second of playing: the clip has looped
        src.write_bytes(b"")                             # the file is gone from under the player
        _, err = p.communicate(timeout=40)
    finally:
        p.kill()
    assert p.returncode == 5, err
    assert "clip.avi stopped giving frames" in err


# ---- a hostile output folder ---------------------------------------------------------------------
def test_planted_links_in_the_output_folder_are_never_followed(tmp_path):
    """Someone else plants the old predictable partial name and the lock name as links to a victim:
    the partial file is a fresh random name, and the lock is opened without following links."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / ".rec.partial.mp4").symlink_to(victim)
    r = run("--source", "demo", "--output", str(shared / "rec.mp4"), "--frames", "5")
    assert r.returncode == 0, r.stderr
    assert victim.read_bytes() == b"precious" and count_frames(shared / "rec.mp4") == 5
    created = tmp_path / "created-by-the-lock"
    (shared / ".rec2.mp4.lock").symlink_to(created)
    r = run("--source", "demo", "--output", str(shared / "rec2.mp4"), "--frames", "5")
    assert r.returncode == 2 and "symbolic link" in r.stderr, r.stderr
    assert not created.exists() and not (shared / "rec2.mp4").exists()


def test_a_file_that_appears_during_the_run_is_kept(tmp_path):
    out = tmp_path / "out.mp4"
    p = popen("--source", "demo", "--output", str(out), "--duration", "3")
    wait_for_line(p, "first frame out")
    out.write_bytes(b"the user's own file")
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert out.read_bytes() == b"the user's own file"
    assert count_frames(tmp_path / "out (2).mp4") > 10 and "appeared during the run" in err


@pytest.mark.parametrize("name", ["dir.mp4", "plain_dir"])
def test_an_output_that_is_a_folder_is_refused_before_recording(tmp_path, name):
    """Even with --overwrite: caught at the start (exit 2, naming the folder), not after the whole run."""
    (tmp_path / name).mkdir()
    t = time.monotonic()
    r = run("--source", "demo", "--frames", "200", "--output", str(tmp_path / name), "--overwrite")
    assert r.returncode == 2, r.stderr
    assert "is a folder" in r.stderr and "recording.mp4" in r.stderr and ".partial" not in r.stderr
    assert "Traceback" not in r.stderr and "frames" not in r.stderr.split("is a folder")[0][-200:]
    assert time.monotonic() - t < 20
    assert sorted(p.name for p in tmp_path.iterdir()) == [name] and not any((tmp_path / name).iterdir())


def test_a_full_disk_stops_an_avi_recording_at_once(tmp_path):
    """OpenCV's writer does not raise on a full disk: the file that stops growing ends the run."""
    disk = tmp_path / "small"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        t = time.monotonic()
        r = run("--source", "demo", "--output", str(disk / "full.avi"), "--duration", "60", timeout=90)
        assert r.returncode == 4, r.stderr[-2000:]
        assert time.monotonic() - t < 30 and "disk full" in r.stderr
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)])


def test_a_missing_camera_is_reported_once_without_opencvs_warnings():
    r = run("--source", "7", "--duration", "4")
    assert r.returncode == 0, r.stderr
    assert "[ WARN" not in r.stderr, r.stderr
    assert r.stderr.count("camera 7 could not be opened") == 1
    assert "PySide6" not in r.stderr                      # no start-up noise either


def _small_tmpfs(where: Path, size: str) -> None:
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")


def test_an_mp4_recording_onto_a_full_disk_exits_4_without_a_crash(tmp_path):
    """PyAV raises ENOSPC on a write; finishing the file must not mux again (PyAV crashed with SIGSEGV),
    and neither the lock nor the partial file is left behind."""
    disk = tmp_path / "full"
    _small_tmpfs(disk, "96k")
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'filler'}", "bs=4k"], capture_output=True)
        r = run("--source", "demo", "--output", str(disk / "out.mp4"), "--frames", "30", timeout=90)
        assert r.returncode == 4, (r.returncode, r.stderr[-2000:])
        assert "No space left on device" in r.stderr and "free some space" in r.stderr
        assert "nothing was kept" in r.stderr
        assert "Traceback" not in r.stderr
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]        # no lock, no partial file
    finally:
        subprocess.run(["umount", str(disk)])


@pytest.mark.parametrize("option", ["--source", "--background"])
def test_a_fifo_source_or_background_exits_2_at_once(tmp_path, option):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    args = ["--source", str(fifo)] if option == "--source" else ["--source", "demo", "--background", str(fifo)]
    r = run(*args, "--frames", "3", timeout=60)
    assert r.returncode == 2 and "named pipe (FIFO), not a file" in r.stderr, r.stderr[-2000:]
