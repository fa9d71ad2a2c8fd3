"""``--no-gui``: run the engine with a virtual camera and/or a file output, logging stats.

Exit codes: 0 done (the asked frames or duration), 2 bad input (option, config, file, model),
3 no output could be opened, 4 the recording failed (disk full, write error; nothing half-written
is kept), 5 the source failed for good, 130 / 143 stopped by SIGINT / SIGTERM (a recording made so
far is finalised and kept). SIGHUP re-reads ``--config`` and applies what can change live.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import time
from pathlib import Path
from typing import Callable

from bgswap.inference.backgrounds import BackgroundError
from bgswap.inference.model_meta import ModelError

from .engine import Engine
from .settings import EngineSettings, Settings, SettingsError
from .signals import SignalCatcher
from .sinks import FileSink, SinkUnavailable, VirtualCameraSink
from .sources import SourceError
from .video_writer import video_path_problem

log = logging.getLogger("bgswap")

EXIT_OK, EXIT_BAD_INPUT, EXIT_NO_OUTPUT, EXIT_RECORDING_FAILED, EXIT_SOURCE_FAILED = 0, 2, 3, 4, 5


def output_problem(output: Path, source: str, overwrite: bool) -> str | None:
    """Why writing ``output`` would destroy something (the source, or a file the user did not say to
    replace), or None."""
    if Path(source).exists() and output.resolve() == Path(source).resolve():
        return f"--output {output} is the source file: choose another name"
    problem = video_path_problem(output)             # a folder, or a suffix no writer makes
    if problem:
        return problem
    if output.exists() and not overwrite:
        return f"{output} exists: add --overwrite to replace it, or choose another name"
    return None


def _flat(s: EngineSettings) -> dict:
    """Every engine setting by name, the refine ones as ``refine.NAME``."""
    out = {f.name: getattr(s, f.name) for f in dataclasses.fields(s) if f.name != "refine"}
    out.update({f"refine.{k}": v for k, v in vars(s.refine).items()})
    return out


def reload_into(engine: Engine, new: EngineSettings) -> None:
    """SIGHUP: bring the running engine to the reloaded settings (``Engine.apply``), saying what changed,
    what was refused and which changes wait for a restart."""
    before = copy.deepcopy(engine.settings)
    try:
        restart = engine.apply(new)
    except (ValueError, BackgroundError, ModelError) as exc:
        log.error("not applied: %s; keeping the current settings", exc)
        return
    applied = [f"{name}={value}" for name, value in _flat(engine.settings).items() if _flat(before)[name] != value]
    if applied:
        log.info("applied: %s", ", ".join(applied))
    if restart:
        log.warning("%s changed: restart to apply", ", ".join(restart))


def run_headless(settings: Settings, signals: SignalCatcher | None = None,
                 reload: Callable[[], Settings] | None = None) -> int:
    """Run until ``outputs.frames``/``outputs.duration`` is reached, a signal, or a failure; returns the
    exit code. ``signals``: a catcher installed early (by the CLI), else one is installed here.
    ``reload``: gives fresh settings on SIGHUP."""
    own = signals is None
    signals = signals or SignalCatcher(reload=True).install()
    try:
        return _run(settings, signals, reload)
    finally:
        if own:
            signals.restore()


def _run(settings: Settings, signals: SignalCatcher, reload: Callable[[], Settings] | None) -> int:
    o = settings.outputs
    if o.output:
        problem = output_problem(Path(o.output), settings.engine.source, o.overwrite)
        if problem:
            log.error("%s", problem)
            return EXIT_BAD_INPUT
    if o.output and o.duration is not None and o.frames is None:
        # S seconds of video: a recording ends once it holds S x fps frames (counted from the first frame
        # out, so start-up takes none of them, and a frame the busy machine dropped does not shorten it)
        o = dataclasses.replace(o, frames=max(1, round(o.duration * settings.engine.fps)))
        settings = dataclasses.replace(settings, outputs=o)
    engine = Engine(settings.engine)
    recording = FileSink(o.output, max_frames=o.frames, overwrite=o.overwrite) if o.output else None
    try:
        code = _start_and_run(engine, settings, signals, reload, recording)
    finally:
        engine.stop()           # finalises the recording: checked, then renamed into place, or removed
    if recording is not None and recording.failed:     # the sink has logged why
        return EXIT_RECORDING_FAILED
    return code


def _start_and_run(engine: Engine, settings: Settings, signals: SignalCatcher,
                   reload: Callable[[], Settings] | None, recording: FileSink | None) -> int:
    o = settings.outputs
    sinks = 0       # outputs first, so they get the run's first frame (a file sink takes a while to open)
    if recording is not None:
        try:
            engine.add_sink(recording)
            sinks += 1
        except SinkUnavailable as exc:
            log.error("%s", exc)
            return EXIT_BAD_INPUT
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
                return EXIT_NO_OUTPUT
            log.warning("carrying on with the other outputs")
    if not sinks:
        log.info("no --virtual-cam or --output given: processing only (stats below)")
    if signals.stop.is_set():
        return signals.exit_code or 0
    try:
        engine.start()
    except (ModelError, BackgroundError, SourceError, ValueError) as exc:
        log.error("%s", exc)
        return EXIT_BAD_INPUT
    code = _loop(engine, settings, signals, reload, recording)
    log.info("final: %s", engine.snapshot().line())
    return code


def _loop(engine: Engine, settings: Settings, signals: SignalCatcher, reload: Callable[[], Settings] | None,
          recording: FileSink | None) -> int:
    o = settings.outputs
    last = loop_start = time.monotonic()
    while True:
        # --duration counts from the first frame out, not the model loading (from here while none came:
        # a camera that never gives a picture still ends the run)
        started = engine.first_out_at or loop_start
        left = o.duration - (time.monotonic() - started) if o.duration is not None else 0.1
        if signals.stop.wait(min(0.1, max(0.0, left))):
            log.info("signal %d: stopping", signals.signum)
            return signals.exit_code or 0
        now = time.monotonic()
        if o.frames is not None and engine.stats.frames_out >= o.frames:
            return EXIT_OK
        if (o.duration is not None and now - started >= o.duration
                and (recording is None or o.frames is None)):
            return EXIT_OK
        if recording is not None and recording.failed:
            return EXIT_RECORDING_FAILED
        if engine.failure:
            log.error("%s: nothing left to run", engine.failure)
            return EXIT_SOURCE_FAILED
        if signals.reload.is_set():
            signals.reload.clear()
            if reload is None:
                log.info("SIGHUP: no --config to reload")
            else:
                try:
                    reload_into(engine, reload().engine)
                except SettingsError as exc:
                    log.error("reloading the settings failed: %s; keeping the current ones", exc)
        if now - last >= o.stats_every:
            log.info("%s", engine.snapshot().line())
            last = now
