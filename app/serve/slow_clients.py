"""Connections that never finish sending their request headers are closed (slowloris).

uvicorn times out idle keep-alive connections only after a first response, and any byte that
arrives restarts that wait: a client trickling header bytes holds its connection for ever. This
protocol gives every request ``timeout_s`` from its connection (or from the previous response) to
deliver its headers; request bodies have their own timeout in the API (``read_timeout_s``). A
request that is not valid HTTP gets its 400 in JSON, as every other error.
"""
from __future__ import annotations

import asyncio
import json
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


def header_timeout_protocol(timeout_s: float) -> type:
    """An ``H11Protocol`` that closes a connection whose request headers take longer than ``timeout_s``."""

    class HeaderTimeoutH11(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            self._headers_due = self.loop.call_later(timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if getattr(self, "_headers_due", None) is not None:
                self._headers_due.cancel()
                self._headers_due = None

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not None and not self.cycle.response_complete:    # headers are in
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._disarm()
            if not self.transport.is_closing():
                self._arm()                   # the next request on this connection gets the same time

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            """A request h11 cannot parse (a NUL byte in a header, a bad request line): 400 in JSON, like
            every other error, instead of uvicorn's plain text."""
            body = json.dumps({"error": f"the request is not valid HTTP: {msg}"}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                       (b"connection", b"close")]
            for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                          h11.Data(data=body), h11.EndOfMessage()):
                self.transport.write(self.conn.send(event))
            self.transport.close()

        def _headers_too_slow(self) -> None:
            self._headers_due = None
            if self.cycle is None or self.cycle.response_complete:
                log.debug("closing %s: no complete request headers within %g s", self.client, timeout_s)
                self.transport.close()

    return HeaderTimeoutH11
