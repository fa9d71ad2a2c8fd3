"""Scale out through a Redis Stream: API processes add jobs, ``bgswap worker`` processes (any number,
any machine) read them in batches through a consumer group, reply on a per-job list and
acknowledge. A worker that dies mid-batch loses nothing: jobs pending longer than ``claim_ms`` are
claimed by another worker (XAUTOCLAIM); jobs past their deadline are dropped, their clients have
had a 504.

Redis may restart under them: a worker that loses the broker retries with a backoff (0.5 s doubling
to 5 s) and recreates the stream and group when a restart without persistence lost them (NOGROUP);
the API answers 503 while the broker is unreachable and its pooled connections reconnect by
themselves. Each worker's heartbeat is a timestamp in one sorted set; ``healthz`` counts the fresh
ones, so a worker that died stops counting within ``HEARTBEAT_S``.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid

import numpy as np

from bgswap.inference.refine import to_uint8

from ..capture import BACKOFF_S
from .batching import QueueFull, RunnerUnavailable, collect_batch
from .config import ServeConfig
from .redact import redact, redact_url

DEFAULTS = ServeConfig()        # the service's defaults have one home: ServeConfig

log = logging.getLogger(__name__)

STREAM, GROUP = "bgswap:jobs", "bgswap-workers"
REPLY = "bgswap:reply:"
BATCHES = "bgswap:batch-sizes"      # hash: batch size -> count, for /metrics
HEARTBEATS = "bgswap:workers"       # sorted set: worker name -> time of its last loop
HEARTBEAT_S = 5.0                   # a worker silent for longer (by the broker's clock) is not counted as running
REPLY_TTL_S = 60


def _broker_time(r) -> float:
    """The broker's clock, so heartbeats compare across machines whatever their clocks say."""
    seconds, micros = r.time()
    return seconds + micros / 1e6


def ensure_group(r) -> None:
    import redis

    try:
        r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _retrying(aio: bool, timeout: float):
    """Connection options: reconnect and retry a command a few times when a pooled connection went
    stale (a Redis restart), and read timeouts longer than any command waits (``timeout``)."""
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError

    if aio:
        from redis.asyncio.retry import Retry
    else:
        from redis.retry import Retry
    return {"retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2), "retry_on_error": [ConnectionError],
            "socket_timeout": timeout, "socket_connect_timeout": 2, "health_check_interval": 5}


class RedisRunner:
    """The API side: XADD a job, wait for its reply (BLPOP) until the deadline."""

    def __init__(self, url: str, max_queue: int = DEFAULTS.max_queue, deadline_s: float = DEFAULTS.deadline_s):
        import redis
        import redis.asyncio as aredis

        self.url, self.max_queue = url, max_queue
        self._sync = redis.Redis.from_url(url, **_retrying(False, 2.0))
        self._r = aredis.Redis.from_url(url, **_retrying(True, deadline_s + 5.0))
        try:
            ensure_group(self._sync)
        except redis.RedisError as exc:          # serve anyway: 503 until the broker is up
            log.warning("broker %s unreachable (%s): answering 503 until it is up", redact_url(url),
                        redact(exc, url))

    async def infer(self, small: np.ndarray, deadline: float) -> np.ndarray:
        import redis

        try:
            return await self._infer(small, deadline)
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError) as exc:
            raise RunnerUnavailable(f"broker unreachable: {redact(exc, self.url)}") from None

    async def _infer(self, small: np.ndarray, deadline: float) -> np.ndarray:
        if await self._r.xlen(STREAM) >= self.max_queue:
            raise QueueFull()
        job = uuid.uuid4().hex
        h, w = small.shape[:2]
        await self._r.xadd(STREAM, {"id": job, "h": h, "w": w, "deadline": time.time() + deadline - time.monotonic(),
                                    "data": np.ascontiguousarray(small).tobytes()})
        left = deadline - time.monotonic()
        reply = await self._r.blpop([REPLY + job], timeout=max(0.01, left)) if left > 0 else None
        if reply is None:
            raise asyncio.TimeoutError()
        data = reply[1]
        if data.startswith(b"error:"):
            raise RuntimeError(data[6:].decode(errors="replace"))
        return np.frombuffer(data, np.uint8).reshape(h, w)

    def depth(self) -> int:
        try:
            return int(self._sync.xlen(STREAM))
        except Exception:
            return -1

    def healthy(self) -> tuple[bool, str]:
        try:
            self._sync.ping()
        except Exception as exc:
            return False, f"broker {redact_url(self.url)} unreachable: {redact(exc, self.url)}"
        try:
            now = _broker_time(self._sync)
            self._sync.zremrangebyscore(HEARTBEATS, "-inf", now - 60)      # workers gone for a minute
            workers = int(self._sync.zcount(HEARTBEATS, now - HEARTBEAT_S, "+inf"))
        except Exception as exc:
            return False, f"broker {redact_url(self.url)} unreachable: {redact(exc, self.url)}"
        return workers > 0, f"broker reachable, {workers} worker(s) running" + (
            "" if workers else ": start one with 'bgswap worker --broker ...'")

    def batch_sizes(self) -> dict[int, int]:
        try:
            return {int(k): int(v) for k, v in self._sync.hgetall(BATCHES).items()}
        except Exception:
            return {}

    def close(self) -> None:
        self._sync.close()


def run_worker(url: str, predict_batch, max_batch: int = DEFAULTS.max_batch, max_wait_ms: float = DEFAULTS.max_wait_ms,
               claim_ms: int = DEFAULTS.claim_ms, stop=None) -> None:
    """Serve jobs until ``stop`` (an Event) is set; a failing job gets an error reply, never kills the loop,
    and a lost broker is retried with a backoff until it is back."""
    import redis

    r = redis.Redis.from_url(url, **_retrying(False, DEFAULTS.deadline_s))
    name = f"{socket.gethostname()}-{os.getpid()}"
    log.info("worker %s reading %s on %s (batches of up to %d)", name, STREAM, redact_url(url), max_batch)
    pending: list = []
    backoff, down_since = BACKOFF_S[0], None

    def get(timeout: float | None):
        if pending:
            return pending.pop(0)
        if timeout is not None and timeout <= 0:
            got = r.xreadgroup(GROUP, name, {STREAM: ">"}, count=max_batch)
        else:
            got = r.xreadgroup(GROUP, name, {STREAM: ">"}, count=max_batch, block=int((timeout or 1.0) * 1000))
        for _stream, entries in got or []:
            pending.extend(entries)
        return pending.pop(0) if pending else None

    def pause(seconds: float) -> bool:
        """Wait ``seconds``; True when ``stop`` was set meanwhile."""
        if stop is None:
            time.sleep(seconds)
            return False
        return stop.wait(seconds)

    group_ready = False
    while stop is None or not stop.is_set():
        try:
            if not group_ready:
                ensure_group(r)
                group_ready = True
            r.zadd(HEARTBEATS, {name: _broker_time(r)})
            claimed = r.xautoclaim(STREAM, GROUP, name, min_idle_time=claim_ms, start_id="0-0", count=max_batch)
            for entry in claimed[1]:
                if entry[1]:
                    log.warning("claimed job %s from a worker that stopped", entry[0])
                    pending.append(entry)
            batch = collect_batch(get, max_batch, max_wait_ms / 1000)
            if batch:
                _serve_batch(r, batch, predict_batch)
            if down_since is not None:
                log.info("broker back after %.1f s", time.monotonic() - down_since)
            backoff, down_since = BACKOFF_S[0], None
        except (redis.ConnectionError, redis.TimeoutError, OSError, redis.ResponseError) as exc:
            pending.clear()             # unacknowledged: another read (or XAUTOCLAIM) gets them again
            if isinstance(exc, redis.ResponseError) and "NOGROUP" in str(exc):
                log.warning("the job stream or its group is gone (a broker restart without persistence): "
                            "recreating it")
                group_ready = False
                continue
            if down_since is None:
                down_since = time.monotonic()
                log.error("broker %s (%s): retrying", "error" if isinstance(exc, redis.ResponseError)
                          else "unreachable", redact(exc, url))
            if pause(backoff):
                break
            backoff = min(backoff * 2, BACKOFF_S[1])
    try:
        r.zrem(HEARTBEATS, name)
    except redis.RedisError:
        pass


def _serve_batch(r, batch: list, predict_batch) -> None:
    now = time.time()
    live, frames = [], []
    for msg_id, fields in batch:
        try:
            h, w = int(fields[b"h"]), int(fields[b"w"])
            if float(fields[b"deadline"]) < now:
                continue                          # its client has had a 504
            frames.append(np.frombuffer(fields[b"data"], np.uint8).reshape(h, w, 3))
            live.append((msg_id, fields[b"id"].decode()))
        except Exception as exc:
            log.error("malformed job %s dropped: %s", msg_id, exc)
    if frames:
        try:
            probs = [to_uint8(p).tobytes() for p in predict_batch(frames)]
        except Exception as exc:
            log.exception("model call failed")
            probs = [f"error:{exc}".encode()] * len(frames)
        pipe = r.pipeline()
        for (_, job), data in zip(live, probs):
            pipe.rpush(REPLY + job, data)
            pipe.expire(REPLY + job, REPLY_TTL_S)
        pipe.hincrby(BATCHES, str(len(frames)), 1)
        pipe.execute()
    ids = [m for m, _ in batch]
    r.xack(STREAM, GROUP, *ids)
    r.xdel(STREAM, *ids)
