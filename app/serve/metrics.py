"""Prometheus metrics of one API process (a registry of its own, so tests can make several apps)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("bgswap_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=self.registry)
        self.latency = Histogram("bgswap_request_seconds", "request latency", ["endpoint"], registry=self.registry,
                                 buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.queue_depth = Gauge("bgswap_queue_depth", "requests waiting for the model", registry=self.registry)
        self.batch_size = Histogram("bgswap_batch_size", "images per model call (embedded)", registry=self.registry,
                                    buckets=BATCH_BUCKETS)
        self.batch_seconds = Histogram("bgswap_batch_seconds", "model call time (embedded)", registry=self.registry)
        self.worker_batches = Gauge("bgswap_worker_batches", "model calls by batch size (all Redis workers)",
                                    ["size"], registry=self.registry)
        self.errors = Counter("bgswap_errors", "requests that failed, by reason", ["reason"], registry=self.registry)

    def on_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
