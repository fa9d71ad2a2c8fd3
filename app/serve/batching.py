"""Dynamic batching: requests that arrive within ``max_wait_ms`` of the first go through the model
as one call of up to ``max_batch`` images. ``LocalBatcher`` runs the model in this process (a
thread); ``redis_broker`` does the same across machines."""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from bgswap.inference.refine import to_uint8

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """Too many requests are waiting: the client should retry later (503)."""


class RunnerUnavailable(Exception):
    """The model cannot be reached (the broker is down): the client should retry later (503)."""


class Runner(Protocol):
    """Takes model-size BGR frames and returns their person probability (uint8, 0-255)."""

    async def infer(self, small: np.ndarray, deadline: float) -> np.ndarray: ...
    def depth(self) -> int: ...
    def healthy(self) -> tuple[bool, str]: ...
    def close(self) -> None: ...


def collect_batch(get: Callable[[float | None], object], max_batch: int, max_wait_s: float) -> list:
    """The first item (waiting up to a second), then whatever else arrives within ``max_wait_s``."""
    first = get(1.0)
    if first is None:
        return []
    batch, until = [first], time.monotonic() + max_wait_s
    while len(batch) < max_batch:
        item = get(max(0.0, until - time.monotonic()))
        if item is None:
            break
        batch.append(item)
    return batch


@dataclass
class _Job:
    small: np.ndarray
    deadline: float
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future = field(repr=False)


class LocalBatcher:
    """The embedded runner: one model thread fed by a bounded queue."""

    def __init__(self, predict_batch: Callable[[list[np.ndarray]], np.ndarray], max_batch: int, max_wait_ms: float,
                 max_queue: int, on_batch: Callable[[int, float], None] | None = None):
        self.predict_batch = predict_batch
        self.max_batch, self.max_wait_s = max_batch, max_wait_ms / 1000
        self.on_batch = on_batch
        self._q: queue.Queue[_Job] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-batcher", daemon=True)
        self._thread.start()

    async def infer(self, small: np.ndarray, deadline: float) -> np.ndarray:
        loop = asyncio.get_running_loop()
        job = _Job(small, deadline, loop, loop.create_future())
        try:
            self._q.put_nowait(job)
        except queue.Full:
            raise QueueFull() from None
        return await job.future

    def depth(self) -> int:
        return self._q.qsize()

    def healthy(self) -> tuple[bool, str]:
        return self._thread.is_alive(), "model thread " + ("running" if self._thread.is_alive() else "stopped")

    def _get(self, timeout: float | None) -> _Job | None:
        try:
            return self._q.get(timeout=timeout) if timeout else self._q.get_nowait()
        except queue.Empty:
            return None

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = [j for j in collect_batch(self._get, self.max_batch, self.max_wait_s)
                     if time.monotonic() < j.deadline and not j.future.done()]   # expired: the client has its 504
            if not batch:
                continue
            t = time.perf_counter()
            try:
                probs = self.predict_batch([j.small for j in batch])
            except Exception as exc:            # a bad batch fails its requests, never the thread
                log.exception("model call failed")
                for j in batch:
                    j.loop.call_soon_threadsafe(_fail, j.future, exc)
                continue
            if self.on_batch:
                self.on_batch(len(batch), time.perf_counter() - t)
            for j, prob in zip(batch, probs):
                j.loop.call_soon_threadsafe(_resolve, j.future, to_uint8(prob))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _resolve(fut: asyncio.Future, value) -> None:
    if not fut.done():
        fut.set_result(value)


def _fail(fut: asyncio.Future, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
