"""``--no-gui``: run the engine with a virtual camera and/or a file output, logging stats."""
from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

from inference.compose import BackgroundError
from inference.model_meta import ModelError

from .engine import Engine
from .settings import Settings
from .sinks import FileSink, SinkUnavailable, VirtualCameraSink
from .sources import SourceError

log = logging.getLogger("bgswap")


def output_problem(output: Path, source: str, overwrite: bool) -> str | None:
    """Why writing ``output`` would destroy something (the source, or a file the user did not say to
    replace), or None."""
    if Path(source).exists() and output.resolve() == Path(source).resolve():
        return f"--output {output} is the source file: choose another name"
    if output.exists() and not overwrite:
        return f"{output} exists: add --overwrite to replace it, or choose another name"
    return None


def run_headless(settings: Settings) -> int:
    """Run until ``outputs.frames``/``outputs.duration`` is reached or SIGINT/SIGTERM; returns the exit code."""
    o = settings.outputs
    output, frames, duration = o.output, o.frames, o.duration
    if output:
        problem = output_problem(Path(output), settings.engine.source, o.overwrite)
        if problem:
            log.error("%s", problem)
            return 2
    stop = threading.Event()

    def _on_signal(signum, _frame):
        log.info("signal %d: stopping", signum)
        stop.set()

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    engine = Engine(settings.engine)
    try:
        sinks = 0       # outputs first, so they get the run's first frame (a file sink takes a while to open)
        if output:
            try:
                engine.add_sink(FileSink(output, max_frames=frames))
                sinks += 1
            except SinkUnavailable as exc:
                log.error("%s", exc)
                return 2
        if o.virtual_camera:
            try:
                cam = VirtualCameraSink(o.vcam_device, o.vcam_backend)
                engine.add_sink(cam)
                log.info("virtual camera ready: select '%s' in your video-call app", cam.device_name)
                sinks += 1
            except SinkUnavailable as exc:
                log.error("%s", exc)
                if not sinks:
                    log.error("no output left to run: fix the virtual camera or add --output FILE")
                    return 3
                log.warning("carrying on with the other outputs")
        if not sinks:
            log.info("no --virtual-cam or --output given: processing only (stats below)")
        try:
            engine.start()
        except (ModelError, BackgroundError, SourceError, ValueError) as exc:
            log.error("%s", exc)
            return 2
        t0 = time.monotonic()
        last = t0
        while not stop.is_set():
            stop.wait(0.1)
            now = time.monotonic()
            if frames is not None and engine.stats.frames_out >= frames:
                break
            if duration is not None and now - t0 >= duration:
                break
            if now - last >= o.stats_every:
                log.info("%s", engine.snapshot().line())
                last = now
        log.info("final: %s", engine.snapshot().line())
        return 0
    finally:
        engine.stop()
        for s, h in old.items():
            signal.signal(s, h)
