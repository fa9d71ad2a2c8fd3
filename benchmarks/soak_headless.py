"""Run ``bgswap --no-gui`` on the demo source for a long time and report whether it held up.

    python benchmarks/soak_headless.py [--minutes 60] [--fps 30] [--out /tmp/soak.mp4]

Starts the real command (a separate process, as a kiosk runs it) recording to a file for the given
time, samples its resident memory, open files and threads every 30 s, and at the end prints: RSS
at start (after the first minute, once warm) and end and the growth in %, frames in the file
against those expected (minutes x 60 x fps), how many decode, and the exit code.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent


def proc_sample(pid: int) -> tuple[float, int, int]:
    """(RSS in MB, open file descriptors, threads) of a running process (Linux /proc)."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss / 1024, len(os.listdir(f"/proc/{pid}/fd")), threads


def decoded_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--out", default="/tmp/bgswap-soak.mp4")
    args = ap.parse_args()
    out = Path(args.out)
    seconds = args.minutes * 60
    cmd = [sys.executable, str(ROOT / "main.py"), "--no-gui", "--source", "demo", "--fps", str(args.fps),
           "--output", str(out), "--overwrite", "--duration", str(seconds), "--stats-every", "60"]
    t0 = time.monotonic()
    log_path = out.with_suffix(".log")
    with open(log_path, "w") as log:
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        samples = []
        while p.poll() is None:
            time.sleep(30)
            if p.poll() is None:
                s = proc_sample(p.pid)
                samples.append((time.monotonic() - t0, *s))
                print(f"{samples[-1][0]:6.0f} s: RSS {s[0]:.0f} MB, fds {s[1]}, threads {s[2]}", flush=True)
    rc = p.returncode
    warm = next((s for s in samples if s[0] >= 60), samples[0] if samples else None)
    last = samples[-1] if samples else None
    expected = round(seconds * args.fps)
    in_file = decoded_frames(out) if out.exists() else 0
    print(f"exit code {rc} after {time.monotonic() - t0:.0f} s (log: {log_path})")
    if warm and last:
        print(f"RSS {warm[1]:.0f} MB at {warm[0]:.0f} s -> {last[1]:.0f} MB at {last[0]:.0f} s: "
              f"{100 * (last[1] / warm[1] - 1):+.1f} % (target < 5 %); fds {warm[2]} -> {last[2]}, "
              f"threads {warm[3]} -> {last[3]}")
    print(f"frames decoded from {out}: {in_file} of {expected} expected ({100 * in_file / expected:.1f} %)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
