"""The API's error: a status, a message for the client, and headers (Retry-After)."""
from __future__ import annotations

QUOTE_CHARS = 40                # an error message quotes at most this much of a client's value


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        self.status, self.message, self.headers = status, message, headers or {}


def quoted(value: str, limit: int = QUOTE_CHARS) -> str:
    """``value`` as an error message quotes it: its start only, so a huge value is never echoed back."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"
