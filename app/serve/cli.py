"""``bgswap serve`` and ``bgswap worker``."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from .config import MB, ServeConfig
from .redact import redact

log = logging.getLogger("bgswap.serve")
DEFAULTS = ServeConfig()        # every option's default comes from here


def make_predict_batch(config: ServeConfig):
    """The model for this process: ONNX Runtime (int8 on the CPU) or Paddle on a GPU, as the app picks."""
    from bgswap.inference import Segmenter

    seg = Segmenter(config.model_dir, threads=config.threads)
    log.info("model %s v%s on %s", seg.meta.name, seg.meta.version, seg.backend_name)
    return seg.predict_batch


def build_runner(config: ServeConfig):
    if config.broker:
        from .redis_broker import RedisRunner

        return RedisRunner(config.broker, config.max_queue, config.deadline_s)
    from .batching import LocalBatcher

    return LocalBatcher(make_predict_batch(config), config.max_batch, config.max_wait_ms, config.max_queue)


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-dir", help="model folder (default: the bundled model)")
    p.add_argument("--threads", type=int, default=DEFAULTS.threads, help="model threads (default: %(default)s)")
    p.add_argument("--max-batch", type=int, default=DEFAULTS.max_batch,
                   help="images per model call at most (default: %(default)s)")
    p.add_argument("--max-wait-ms", type=float, default=DEFAULTS.max_wait_ms,
                   help="how long a batch waits to fill (default: %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true")


def serve_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bgswap serve", description="Background replacement as an HTTP service.")
    p.add_argument("--host", default=DEFAULTS.host, help="address to bind (default: %(default)s, loopback only)")
    p.add_argument("--port", type=int, default=DEFAULTS.port, help="(default: %(default)s)")
    p.add_argument("--broker", help="redis://HOST:PORT: queue jobs for 'bgswap worker' processes "
                                    "(default: run the model in this process)")
    p.add_argument("--api-key", default=os.environ.get("BGSWAP_API_KEY"),
                   help="required X-API-Key header value (needed when --host is not loopback; or BGSWAP_API_KEY)")
    p.add_argument("--max-megapixels", type=float, default=DEFAULTS.max_megapixels,
                   help="largest image in megapixels (default: %(default)s)")
    p.add_argument("--max-mb", type=float, default=DEFAULTS.max_bytes / MB,
                   help="largest upload in MB (default: %(default)s)")
    p.add_argument("--max-queue", type=int, default=DEFAULTS.max_queue,
                   help="waiting requests before 503 (default: %(default)s)")
    p.add_argument("--max-inflight-mp", type=float, default=DEFAULTS.max_inflight_mp,
                   help="megapixels of photos in work at once, a composite or a cut-out counting twice; past it: 503 "
                        "(default: %(default)s)")
    p.add_argument("--max-inflight-mb", type=float, default=DEFAULTS.max_inflight_mb,
                   help="MB of request bodies held at once, counted as they arrive; past it: 503 "
                        "(default: %(default)s)")
    p.add_argument("--read-timeout", type=float, default=DEFAULTS.read_timeout_s,
                   help="seconds a client has for its request headers (then the connection is closed) "
                        "and a request body may stall (then 408) (default: %(default)s)")
    p.add_argument("--deadline", type=float, default=DEFAULTS.deadline_s,
                   help="seconds before a request gets 504 (default: %(default)s)")
    add_common(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServeConfig(host=args.host, port=args.port, broker=args.broker, api_key=args.api_key,
                         max_bytes=int(args.max_mb * MB), max_megapixels=args.max_megapixels,
                         max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                         deadline_s=args.deadline, threads=args.threads, model_dir=args.model_dir,
                         max_inflight_mp=args.max_inflight_mp, max_inflight_mb=args.max_inflight_mb,
                         read_timeout_s=args.read_timeout)
    try:
        config.check()
    except ValueError as exc:
        p.error(str(exc))
    import uvicorn

    from .api import create_app

    try:
        runner = build_runner(config)
    except Exception as exc:
        log.error("cannot start: %s", redact(exc, config.broker))
        return 2
    app = create_app(config, runner)
    log.info("serving on http://%s:%d (page at /, API docs at /docs)", config.host, config.port)
    from .slow_clients import header_timeout_protocol

    uvicorn.run(app, host=config.host, port=config.port, log_level="warning",
                http=header_timeout_protocol(config.read_timeout_s))
    runner.close()
    return 0


def worker_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bgswap worker", description="Run the model for 'bgswap serve --broker'.")
    p.add_argument("--broker", required=True, help="redis://HOST:PORT")
    p.add_argument("--claim-ms", type=int, default=DEFAULTS.claim_ms,
                   help="take over jobs another worker has held this long (it died)")
    add_common(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ..signals import SignalCatcher
    from .redis_broker import run_worker

    config = ServeConfig(model_dir=args.model_dir, threads=args.threads)
    signals = SignalCatcher().install()
    try:
        run_worker(args.broker, make_predict_batch(config), args.max_batch, args.max_wait_ms, args.claim_ms,
                   stop=signals.stop)
    finally:
        signals.restore()
    return 0


def main(argv: list[str]) -> int:
    command, rest = argv[0], argv[1:]
    return serve_main(rest) if command == "serve" else worker_main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
