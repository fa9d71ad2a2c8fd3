"""What the service holds at once: request bodies as they arrive, and photos in work."""
from __future__ import annotations

import contextlib
import threading

from ..memory import release_memory
from .config import MB
from .errors import ApiError


class BodyBudget:
    """Bytes of request bodies held at once, counted as they arrive, so that many slow or large uploads
    cannot fill memory before any of them is decoded: a chunk that would take the total past the
    limit ends its request with 503 + Retry-After, unless no other request holds any."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0

    def take(self, state, n: int) -> None:
        """Count ``n`` more bytes for the request whose ``request.state`` is ``state`` (kept there)."""
        held = getattr(state, "body_bytes", 0)
        if self.used > held and self.used + n > self.limit:
            raise ApiError(503, f"the service is receiving other uploads ({self.used / MB:.0f} of "
                                f"{self.limit / MB:.0f} MB): retry in a moment", {"Retry-After": "2"})
        self.used += n
        state.body_bytes = held + n

    def give(self, state) -> None:
        """Give back what the request whose ``request.state`` is ``state`` held."""
        self.used -= getattr(state, "body_bytes", 0)
        state.body_bytes = 0


class MemoryBudget:
    """Megapixels of photos in work at once (decoded, refined, composited): a request that would pass
    the budget gets 503 with Retry-After, unless nothing else is in work. Memory is handed back to
    the system when the last request leaves."""

    def __init__(self, megapixels: float):
        self.limit, self.used, self.requests = megapixels, 0.0, 0

    @contextlib.contextmanager
    def hold(self, mp: float):
        if self.requests and self.used + mp > self.limit:
            raise ApiError(503, f"the service is busy with large photos ({self.used:.0f} of {self.limit:g} megapixels "
                                "in work): retry in a moment", {"Retry-After": "2"})
        self.used += mp
        self.requests += 1
        try:
            yield
        finally:
            self.used -= mp
            self.requests -= 1
            if self.requests == 0:
                self.used = 0.0
                threading.Thread(target=release_memory, name="trim", daemon=True).start()   # off the event loop

