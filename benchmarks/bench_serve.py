"""Load test of ``bgswap serve`` on loopback: N requests at a given concurrency per configuration.

    python benchmarks/bench_serve.py [--requests 500] [--concurrency 32] [--only embedded,...]

Configurations: ``embedded`` (model in the API process, batches of up to 8), ``baseline`` (the same,
one model call per request), ``redis-1`` and ``redis-2`` (API + 1 or 2 ``bgswap worker``
processes through a local redis-server), and ``overload`` (embedded with a queue of 4: shows 503s).
Prints throughput, latency p50/p95/p99, errors by status and the batch-size histogram; then the
model's time per image at batch 1 and 8 (what batching buys on this machine).

    python benchmarks/bench_serve.py --fault        # Redis restarted twice and a worker killed under load
    python benchmarks/bench_serve.py --big          # 16 concurrent 40-megapixel uploads: peak memory

``--fault``: 2,000 mattes at concurrency 32 through Redis and two workers (and more, until 5 s after
the last fault); Redis is stopped for ``--down`` seconds (3; losing its data) at 5 s and again 20 s
after it came back, and one worker is killed 10 s after Redis came back the first time. Prints the
answers by status and, for each restart, how long after Redis came back the first 200 arrived.
``--big``: 16 composites of a 40-megapixel JPEG at once to the embedded service; prints the
answers by status and the API process's peak resident memory (VmHWM).
"""
from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PHOTO = ROOT / "assets" / "demo" / "astronaut.jpg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bgswap.app.cli", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def wait_healthy(url: str, workers: int = 0) -> None:
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            h = httpx.get(f"{url}/healthz", timeout=2).json()
            if h["ok"] and (not workers or f"{workers} worker(s) running" in h["detail"]):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not become healthy")


async def load(url: str, n: int, concurrency: int) -> tuple[list[float], Counter, float]:
    body = PHOTO.read_bytes()
    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []
    codes: Counter = Counter()
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one():
            async with sem:
                t = time.perf_counter()
                r = await client.post(f"{url}/v1/composite?background=blur", content=body)
                lat.append(time.perf_counter() - t)
                codes[r.status_code] += 1
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return lat, codes, time.perf_counter() - t0


def batch_histogram(metrics: str) -> dict[int, int]:
    """Model calls by batch size, from the embedded histogram or the workers' counts."""
    workers = {int(m[0]): int(float(m[1])) for m in re.findall(r'bgswap_worker_batches\{size="(\d+)"\} ([\d.e+]+)', metrics)}
    if workers:
        return dict(sorted(workers.items()))
    cum = {float(b): float(v) for b, v in re.findall(r'bgswap_batch_size_bucket\{le="([\d.]+)"\} ([\d.e+]+)', metrics)}
    out, prev = {}, 0.0
    for b in sorted(cum):
        if cum[b] - prev:
            out[int(b)] = int(cum[b] - prev)
        prev = cum[b]
    return out


def run_config(name: str, n: int, concurrency: int, redis_url: str | None) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    procs, workers = [], 0
    args = ["serve", "--port", str(port), "--max-queue", "4" if name == "overload" else "1000", "--deadline", "120"]
    if name == "baseline":
        args += ["--max-batch", "1"]
    if name.startswith("redis"):
        import redis

        redis.Redis.from_url(redis_url).delete("bgswap:batch-sizes")      # this run's batches only
        workers = int(name.split("-")[1])
        args += ["--broker", redis_url]
        procs += [start(["worker", "--broker", redis_url, "--threads", str(max(1, 2 // workers))])
                  for _ in range(workers)]
    procs.append(start(args))
    try:
        wait_healthy(url, workers)
        httpx.post(f"{url}/v1/matte", content=PHOTO.read_bytes(), timeout=60)        # warm up
        lat, codes, wall = asyncio.run(load(url, n, concurrency))
        hist = batch_histogram(httpx.get(f"{url}/metrics").text)
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    ok = codes.get(200, 0)
    p50, p95, p99 = (1000 * float(np.percentile(lat, q)) for q in (50, 95, 99))
    errors = {c: k for c, k in codes.items() if c != 200}
    print(f"{name:9s} {ok / wall:6.1f} img/s  p50 {p50:6.0f} ms  p95 {p95:6.0f} ms  p99 {p99:6.0f} ms  "
          f"ok {ok}/{n}  errors {errors or 0}  batches {hist}", flush=True)


def _start_redis(exe: str, port: int) -> subprocess.Popen:
    import redis

    p = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                         stdout=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            redis.Redis(port=port).ping()
            return p
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def fault_run(n: int = 2000, concurrency: int = 32, down: float = 3.0) -> None:
    exe = shutil.which("redis-server")
    if exe is None:
        print("redis-server is not installed: no fault run")
        return
    rport, port = free_port(), free_port()
    holder = {"redis": _start_redis(exe, rport)}
    broker, url = f"redis://127.0.0.1:{rport}", f"http://127.0.0.1:{port}"
    workers = [start(["worker", "--broker", broker, "--threads", "1"]) for _ in range(2)]
    api = start(["serve", "--port", str(port), "--broker", broker])
    answers: list[tuple[float, int]] = []
    back_at: list[float] = []
    try:
        wait_healthy(url, 2)
        body = PHOTO.read_bytes()

        async def run() -> None:
            faults_done = asyncio.Event()
            async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
                async def client_loop():       # n requests in all, and on until 5 s after the last fault
                    while len(answers) < n or not faults_done.is_set() or time.monotonic() < back_at[-1] + 5:
                        try:
                            r = await client.post(f"{url}/v1/matte", content=body)
                            answers.append((time.monotonic(), r.status_code))
                        except httpx.HTTPError as exc:
                            answers.append((time.monotonic(), type(exc).__name__))

                async def faults():
                    # Redis down at 5 s and again 20 s after it was back; a worker killed between
                    for at, what in ((5, "redis"), (12 + down, "worker"), (22 + down, "redis")):
                        await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
                        if what == "worker":
                            workers[0].kill()
                            continue
                        holder["redis"].terminate()
                        await asyncio.to_thread(holder["redis"].wait)
                        await asyncio.sleep(down)
                        holder["redis"] = await asyncio.to_thread(_start_redis, exe, rport)
                        back_at.append(time.monotonic())
                    faults_done.set()

                t0 = time.monotonic()
                await asyncio.gather(faults(), *(client_loop() for _ in range(concurrency)))
        asyncio.run(run())
    finally:
        for p in (api, *workers):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in (api, *workers):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        holder["redis"].terminate()
    codes = Counter(c for _, c in answers)
    print(f"fault run: {len(answers)} mattes at concurrency {concurrency}, Redis down {down:g} s twice, a worker "
          f"killed: answers {dict(sorted(codes.items(), key=str))}")
    for i, t in enumerate(back_at, 1):
        first = min((a for a, c in answers if c == 200 and a >= t), default=None)
        print(f"  restart {i}: first 200 {first - t:.1f} s after Redis was back" if first else
              f"  restart {i}: no 200 after Redis was back")


def big_run(uploads: int = 16, megapixels: float = 40.0) -> None:
    import cv2

    w = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    h = int(megapixels * 1e6 // w)
    big = cv2.resize(cv2.imread(str(PHOTO)), (w, h), interpolation=cv2.INTER_LINEAR)
    body = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = start(["serve", "--port", str(port), "--deadline", "120"])
    try:
        wait_healthy(url)

        async def run() -> Counter:
            async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=uploads)) as client:
                rs = await asyncio.gather(*(client.post(f"{url}/v1/composite?background=blur", content=body)
                                            for _ in range(uploads)))
            return Counter(r.status_code for r in rs)
        t = time.perf_counter()
        codes = asyncio.run(run())
        wall = time.perf_counter() - t
        status = Path(f"/proc/{api.pid}/status").read_text()
        peak = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
        now = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024
    finally:
        api.send_signal(signal.SIGINT)
        api.wait(timeout=30)
    print(f"big uploads: {uploads} composites of a {w}x{h} JPEG ({len(body) / 1e6:.1f} MB) at once: "
          f"answers {dict(codes)} in {wall:.1f} s; API peak RSS {peak:.0f} MB, {now:.0f} MB after")


def model_batch_times() -> None:
    from bgswap.inference import Segmenter

    import cv2

    seg = Segmenter(threads=2)
    frame = cv2.imread(str(PHOTO))
    for n in (1, 8):
        frames = [frame] * n
        seg.predict_batch(frames)
        t = time.perf_counter()
        for _ in range(5):
            seg.predict_batch(frames)
        print(f"model alone, batch {n}: {(time.perf_counter() - t) / 5 / n * 1000:.1f} ms per image "
              f"({seg.backend_name})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--only", default="embedded,baseline,redis-1,redis-2,overload")
    ap.add_argument("--fault", action="store_true", help="only the fault run (Redis restarts, a worker killed)")
    ap.add_argument("--big", action="store_true", help="only the 16 x 40-megapixel memory run")
    ap.add_argument("--down", type=float, default=3.0, help="seconds Redis stays down in the fault run")
    args = ap.parse_args()
    if args.fault or args.big:
        if args.fault:
            fault_run(2000 if args.requests == 500 else args.requests, args.concurrency, args.down)
        if args.big:
            big_run()
        return 0
    names = args.only.split(",")
    redis_proc, redis_url = None, None
    if any(n.startswith("redis") for n in names):
        exe = shutil.which("redis-server")
        if exe is None:
            print("redis-server is not installed: skipping the redis configurations")
            names = [n for n in names if not n.startswith("redis")]
        else:
            rport = free_port()
            redis_proc = subprocess.Popen([exe, "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                           "--appendonly", "no"], stdout=subprocess.DEVNULL)
            redis_url = f"redis://127.0.0.1:{rport}"
            time.sleep(0.5)
    print(f"{args.requests} requests of {PHOTO.name} (composite, blur) at concurrency {args.concurrency}")
    try:
        for name in names:
            run_config(name, args.requests, args.concurrency, redis_url)
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
    model_batch_times()
    return 0


if __name__ == "__main__":
    sys.exit(main())
