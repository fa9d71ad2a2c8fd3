"""Reading a request's photo: the body as it streams in (limits, time-outs, the body budget), the
multipart form, and the image's header and pixels (``images``), each refusal an ApiError."""
from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from bgswap.inference.background_spec import MADE_SYNTAX

from .budgets import BodyBudget
from .config import MB, ServeConfig
from .errors import ApiError, quoted
from .images import ImageRejected, decode_upload, probe_upload
from .metrics import Metrics

log = logging.getLogger("bgswap.serve.api")

MAX_FIELD_BYTES = 1024          # a text form field (background) over this is refused while it arrives: 413
BODY_TIMEOUTS = 6               # a whole body must arrive within this many read timeouts


class Uploads:
    """The service's reader of uploads, with its limits (``ServeConfig``) and the body budget."""

    def __init__(self, config: ServeConfig, metrics: Metrics):
        self.config, self.metrics = config, metrics
        self.bodies = BodyBudget(int(config.max_inflight_mb * MB))

    async def read_body(self, request: Request, limit: int) -> bytes:
        """The request body, counted as it streams in: 413 past ``limit`` bytes, 408 when no byte comes
        for ``read_timeout_s`` (a slow client, or a Content-Length larger than the body)."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"the request is {int(declared) / 1e6:.1f} MB; the limit is {limit / 1e6:.1f} MB")
        body = bytearray()
        chunks = request.stream().__aiter__()
        ends_by = time.monotonic() + self.config.read_timeout_s * BODY_TIMEOUTS    # a trickle cannot hold on for ever
        while True:
            wait = min(self.config.read_timeout_s, ends_by - time.monotonic())
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), timeout=max(wait, 0.001))
            except StopAsyncIteration:
                break
            except asyncio.TimeoutError:
                raise ApiError(408, f"the request body stopped arriving for {self.config.read_timeout_s:g} s, or took over "
                                    f"{self.config.read_timeout_s * BODY_TIMEOUTS:g} s in all") from None
            body += chunk
            self.bodies.take(request.state, len(chunk))         # given back when the request ends (count_and_time)
            if len(body) > limit:
                raise ApiError(413, f"the request is over the limit of {limit / 1e6:.1f} MB")
        return bytes(body)

    async def read_upload(self, request: Request, field: str) -> tuple[bytes, dict]:
        """The image bytes (multipart ``field`` or the raw body) and the other form fields."""
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            request._body = await self.read_body(request, self.config.max_bytes * 2 + 65536)   # image + background
            try:
                # max_part_size bounds the text fields (the background's name) as they arrive, not the files
                form = await request.form(max_files=2, max_fields=10, max_part_size=MAX_FIELD_BYTES)
            except OSError as exc:                   # the spool for large parts: the server's disk, not the client
                raise spool_failed(exc) from None
            except Exception as exc:
                if "size" in str(exc).lower():
                    raise ApiError(413, f"a text field of the form is over {MAX_FIELD_BYTES} bytes: background is a "
                                        f"bundled name, {MADE_SYNTAX}; send images as files") from None
                raise ApiError(400, f"the form cannot be read: {quoted(str(exc))}") from None
            request.state.form = form                # its spooled files are closed when the request ends
            upload = form.get(field)
            if upload is None or isinstance(upload, str):
                raise ApiError(400, f"send the photo as the multipart field '{field}' (or as the raw body)")
            data = await self.read_part(upload)
            fields = {k: v for k, v in form.items() if k != field}
            return data, fields
        return await self.read_body(request, self.config.max_bytes), {}

    async def read_part(self, upload) -> bytes:
        try:
            return await upload.read(self.config.max_bytes + 1)
        except OSError as exc:
            raise spool_failed(exc) from None

    def probe(self, data: bytes, what: str) -> tuple[int, int]:
        """The upload's width and height, from its header (400/413/415 for a bad or too large one)."""
        try:
            _fmt, w, h = probe_upload(data, self.config.max_bytes, self.config.max_megapixels, what)
        except ImageRejected as exc:
            self.metrics.errors.labels(f"bad_{what.replace(' ', '_')}").inc()
            raise ApiError(exc.status, exc.message) from None
        return w, h

    async def decode(self, data: bytes, what: str, reduce_to_mp: float | None = None,
                     notes: list[str] | None = None) -> np.ndarray:
        """The upload as BGR; a warning about a damaged but decodable image goes to ``notes`` and the log."""
        seen = len(notes) if notes is not None else 0
        try:
            img = await run_in_threadpool(decode_upload, data, self.config.max_bytes, self.config.max_megapixels, what,
                                          reduce_to_mp, notes)
        except ImageRejected as exc:
            self.metrics.errors.labels(f"bad_{what.replace(' ', '_')}").inc()
            raise ApiError(exc.status, exc.message) from None
        for note in (notes or [])[seen:]:
            self.metrics.errors.labels(f"damaged_{what.replace(' ', '_')}").inc()
            log.warning("an upload was processed although damaged: %s", note)
        return img


def spool_failed(exc: OSError) -> ApiError:
    """The multipart parser could not write a large part to its temporary file (a full or read-only
    TMPDIR): the server's trouble, said plainly to the client (503) and with the details in the log."""
    import tempfile

    log.error("cannot spool an upload to a temporary file in %s: %s (is it full? set TMPDIR to a folder "
              "with space)", tempfile.gettempdir(), exc)
    return ApiError(503, "the server has no temporary disk space for the upload: retry in a moment",
                    {"Retry-After": "10"})
