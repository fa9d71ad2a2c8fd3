"""The service's settings: where it listens, its limits, its batching and its broker."""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from bgswap.inference.model_meta import DEFAULT_THREADS

MB = 1024 * 1024                          # the unit of the --max-mb and --max-inflight-mb options


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    broker: str | None = None             # redis://HOST:PORT[/DB]; None: the model runs in this process
    api_key: str | None = None            # required (X-API-Key header) when host is not loopback
    max_bytes: int = 20 * MB              # an upload over this is refused (413)
    max_megapixels: float = 40.0          # an image over this is refused before it is decoded (413)
    max_batch: int = 8                    # requests the model takes in one call at most
    max_wait_ms: float = 5.0              # how long the first request waits for others to join its batch
    max_queue: int = 64                   # waiting requests beyond this get 503 + Retry-After
    deadline_s: float = 10.0              # a request not answered by then gets 504
    read_timeout_s: float = 10.0          # request headers not in by then: closed; a body stalled this long: 408
    max_inflight_mp: float = 120.0        # megapixels of photos in work at once (a composite or cut-out counts twice):
                                          # a request past it gets 503 + Retry-After
    max_inflight_mb: float = 200.0        # request bodies held at once, counted as they arrive: past it,
                                          # 503 + Retry-After
    threads: int = DEFAULT_THREADS        # model threads
    claim_ms: int = 3000                  # a worker takes over jobs another worker has held this long (it died)
    model_dir: str | None = None

    @property
    def loopback(self) -> bool:
        """Whether every address the server binds is a loopback one ("" binds them all: not loopback)."""
        if not self.host.strip():
            return False
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except OSError:
            return False
        addrs = {info[4][0] for info in infos}
        return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)

    def check(self) -> None:
        """ValueError with the fix when the settings are unsafe or impossible."""
        if not self.loopback and not self.api_key:
            raise ValueError(f"binding to {self.host} exposes the service beyond this machine: set an API key "
                             "(--api-key or BGSWAP_API_KEY); clients then send it as the X-API-Key header")
        if self.max_batch < 1 or self.max_queue < 1 or self.deadline_s <= 0 or self.max_wait_ms < 0:
            raise ValueError("max batch and queue must be at least 1, the deadline positive, the wait >= 0")
        if self.read_timeout_s <= 0 or self.max_inflight_mp <= 0 or self.max_inflight_mb <= 0:
            raise ValueError("the read timeout, the in-flight megapixels and the in-flight MB must be positive")
