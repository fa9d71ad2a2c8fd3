"""The service's settings: where it listens, its limits, its batching and its broker."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    broker: str | None = None             # redis://HOST:PORT[/DB]; None: the model runs in this process
    api_key: str | None = None            # required (X-API-Key header) when host is not loopback
    max_bytes: int = 20 * 1024 * 1024     # an upload over this is refused (413)
    max_megapixels: float = 40.0          # an image over this is refused before it is decoded (413)
    max_batch: int = 8                    # requests the model takes in one call at most
    max_wait_ms: float = 5.0              # how long the first request waits for others to join its batch
    max_queue: int = 64                   # waiting requests beyond this get 503 + Retry-After
    deadline_s: float = 10.0              # a request not answered by then gets 504
    threads: int = 2                      # model threads
    model_dir: str | None = None

    @property
    def loopback(self) -> bool:
        if self.host in ("localhost", ""):
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def check(self) -> None:
        """ValueError with the fix when the settings are unsafe or impossible."""
        if not self.loopback and not self.api_key:
            raise ValueError(f"binding to {self.host} exposes the service beyond this machine: set an API key "
                             "(--api-key or BGSWAP_API_KEY); clients then send it as the X-API-Key header")
        if self.max_batch < 1 or self.max_queue < 1 or self.deadline_s <= 0 or self.max_wait_ms < 0:
            raise ValueError("max batch and queue must be at least 1, the deadline positive, the wait >= 0")
