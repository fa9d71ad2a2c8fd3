"""The HTTP API (FastAPI): ``/v1/matte``, ``/v1/composite``, ``/healthz``, ``/metrics``, the page at
``/`` and the OpenAPI docs at ``/docs``. Decoding, refinement and compositing run in worker
threads; the model runs behind a ``Runner`` (in this process, or Redis workers)."""
from __future__ import annotations

import asyncio
import contextlib
import threading
import hmac
import logging
import time
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from bgswap.inference.background_spec import MADE_KINDS, MADE_SYNTAX, BackgroundError, BackgroundSpec
from bgswap.inference.compose import Compositor, ImageBackground, parse_background
from bgswap.inference.media import media_kind
from bgswap.inference.model_meta import ModelMeta
from bgswap.inference.refine import MaskRefiner, RefineSettings, to_uint8
from bgswap.inference.resources import bundled_backgrounds
from bgswap.inference.segmenter import model_dir_for

from ..memory import release_memory
from .batching import QueueFull, Runner, RunnerUnavailable
from .config import MB, ServeConfig
from .images import ImageRejected, decode_upload, encode, probe_upload
from .metrics import Metrics

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
PUBLIC_PATHS = frozenset({"/", "/healthz", "/metrics"})   # answer without the key; see the README
KEY_ERROR = "missing or wrong X-API-Key header"
MAX_FIELD_BYTES = 1024          # a text form field (background) over this is refused while it arrives: 413
QUOTE_CHARS = 40                # an error message quotes at most this much of a client's value


def bundled_images() -> dict[str, Path]:
    """Name (file stem) -> file, for the still images shipped with the app."""
    return {p.stem: p for p in bundled_backgrounds() if media_kind(p) == "image"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        self.status, self.message, self.headers = status, message, headers or {}


def create_app(config: ServeConfig, runner: Runner) -> FastAPI:
    config.check()
    meta = ModelMeta.load(model_dir_for(config.model_dir))       # the model the workers load (Segmenter's rule)
    metrics = Metrics()
    backgrounds = bundled_images()
    app = FastAPI(title="bgswap", version=meta.version,
                  description="Cut the person out of a photo, or put them on another background.")
    app.state.metrics, app.state.runner = metrics, runner
    if hasattr(runner, "on_batch"):                 # the embedded batcher reports its model calls
        runner.on_batch = metrics.on_batch

    def key_matches(x_api_key: str | None) -> bool:
        """Whether a request with this X-API-Key header may be served (always, when no key is set)."""
        # header values arrive as latin-1 text: compare the raw bytes with the key's UTF-8
        return not config.api_key or bool(x_api_key) and hmac.compare_digest(
            x_api_key.encode("latin-1", "replace"), config.api_key.encode("utf-8"))

    def require_key(x_api_key: Annotated[str | None, Header()] = None) -> None:
        """The photo routes' check (declared per route, so the API docs show the header)."""
        if not key_matches(x_api_key):
            raise ApiError(401, KEY_ERROR)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException):       # 404, 405 ...
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):          # a bad query parameter
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        return JSONResponse({"error": problems or "invalid request"}, status_code=422)

    budget = MemoryBudget(config.max_inflight_mp)
    bodies = BodyBudget(int(config.max_inflight_mb * MB))

    async def read_body(request: Request, limit: int) -> bytes:
        """The request body, counted as it streams in: 413 past ``limit`` bytes, 408 when no byte comes
        for ``read_timeout_s`` (a slow client, or a Content-Length larger than the body)."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"the request is {int(declared) / 1e6:.1f} MB; the limit is {limit / 1e6:.1f} MB")
        body = bytearray()
        chunks = request.stream().__aiter__()
        ends_by = time.monotonic() + config.read_timeout_s * BODY_TIMEOUTS    # a trickle cannot hold on for ever
        while True:
            wait = min(config.read_timeout_s, ends_by - time.monotonic())
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), timeout=max(wait, 0.001))
            except StopAsyncIteration:
                break
            except asyncio.TimeoutError:
                raise ApiError(408, f"the request body stopped arriving for {config.read_timeout_s:g} s, or took over "
                                    f"{config.read_timeout_s * BODY_TIMEOUTS:g} s in all") from None
            body += chunk
            bodies.take(request.state, len(chunk))         # given back when the request ends (count_and_time)
            if len(body) > limit:
                raise ApiError(413, f"the request is over the limit of {limit / 1e6:.1f} MB")
        return bytes(body)

    async def read_upload(request: Request, field: str) -> tuple[bytes, dict]:
        """The image bytes (multipart ``field`` or the raw body) and the other form fields."""
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            request._body = await read_body(request, config.max_bytes * 2 + 65536)   # image + background
            try:
                # max_part_size bounds the text fields (the background's name) as they arrive, not the files
                form = await request.form(max_files=2, max_fields=10, max_part_size=MAX_FIELD_BYTES)
            except OSError as exc:                   # the spool for large parts: the server's disk, not the client
                raise spool_failed(exc) from None
            except Exception as exc:
                if "size" in str(exc).lower():
                    raise ApiError(413, f"a text field of the form is over {MAX_FIELD_BYTES} bytes: background is a "
                                        "name, blur[:1-100] or color:#RRGGBB; send images as files") from None
                raise ApiError(400, f"the form cannot be read: {quoted(str(exc))}") from None
            request.state.form = form                # its spooled files are closed when the request ends
            upload = form.get(field)
            if upload is None or isinstance(upload, str):
                raise ApiError(400, f"send the photo as the multipart field '{field}' (or as the raw body)")
            data = await read_part(upload)
            fields = {k: v for k, v in form.items() if k != field}
            return data, fields
        return await read_body(request, config.max_bytes), {}

    async def read_part(upload) -> bytes:
        try:
            return await upload.read(config.max_bytes + 1)
        except OSError as exc:
            raise spool_failed(exc) from None

    def probe(data: bytes, what: str) -> tuple[int, int]:
        """The upload's width and height, from its header (400/413/415 for a bad or too large one)."""
        try:
            _fmt, w, h = probe_upload(data, config.max_bytes, config.max_megapixels, what)
        except ImageRejected as exc:
            metrics.errors.labels(f"bad_{what.replace(' ', '_')}").inc()
            raise ApiError(exc.status, exc.message) from None
        return w, h

    async def alpha_for(img: np.ndarray) -> np.ndarray:
        """The refined person alpha (float32) at ``img``'s size, or at most REFINE_MAX_MP of it."""
        in_h, in_w = meta.input_shape(img.shape[:2])
        small = await run_in_threadpool(cv2.resize, img, (in_w, in_h), interpolation=cv2.INTER_AREA)
        deadline = time.monotonic() + config.deadline_s
        try:
            prob = await asyncio.wait_for(runner.infer(small, deadline), timeout=config.deadline_s)
        except QueueFull:
            metrics.errors.labels("queue_full").inc()
            raise ApiError(503, "the service is busy: retry in a moment", {"Retry-After": "1"}) from None
        except RunnerUnavailable as exc:
            metrics.errors.labels("broker").inc()
            log.warning("%s", exc)
            raise ApiError(503, "the model is unreachable (its broker is down): retry in a moment",
                           {"Retry-After": "2"}) from None
        except asyncio.TimeoutError:
            metrics.errors.labels("deadline").inc()
            raise ApiError(504, f"no answer from the model within {config.deadline_s:g} s") from None
        return await run_in_threadpool(_refine, prob, img)

    async def decode(data: bytes, what: str, reduce_to_mp: float | None = None,
                     notes: list[str] | None = None) -> np.ndarray:
        """The upload as BGR; a warning about a damaged but decodable image goes to ``notes`` and the log."""
        seen = len(notes) if notes is not None else 0
        try:
            img = await run_in_threadpool(decode_upload, data, config.max_bytes, config.max_megapixels, what,
                                          reduce_to_mp, notes)
        except ImageRejected as exc:
            metrics.errors.labels(f"bad_{what.replace(' ', '_')}").inc()
            raise ApiError(exc.status, exc.message) from None
        for note in (notes or [])[seen:]:
            metrics.errors.labels(f"damaged_{what.replace(' ', '_')}").inc()
            log.warning("an upload was processed although damaged: %s", note)
        return img

    @app.middleware("http")
    async def public_routes_only_without_a_key(request: Request, call_next):
        """With a key set, only PUBLIC_PATHS answer without it: the API docs, the OpenAPI schema, the
        background listings and unknown paths (401, not 404: routes cannot be probed) need it too."""
        if request.url.path not in PUBLIC_PATHS and not key_matches(request.headers.get("x-api-key")):
            return JSONResponse({"error": KEY_ERROR}, status_code=401)
        return await call_next(request)

    @app.middleware("http")
    async def count_and_time(request: Request, call_next):
        endpoint = {"/v1/matte": "matte", "/v1/composite": "composite"}.get(request.url.path)
        t = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            log.exception("%s failed", request.url.path)
            metrics.errors.labels("internal").inc()
            response = JSONResponse({"error": "internal error: see the server's log"}, status_code=500)
        finally:
            bodies.give(request.state)
            form = getattr(request.state, "form", None)
            if form is not None:                  # starlette leaves a parsed form's temporary files open
                request.state.form = None
                await form.close()
        if endpoint:
            metrics.requests.labels(endpoint, str(response.status_code)).inc()
            metrics.latency.labels(endpoint).observe(time.perf_counter() - t)
        return response

    @app.post("/v1/matte", dependencies=[Depends(require_key)], responses={200: {"content": {"image/png": {}}}})
    async def matte(request: Request, format: Annotated[str, Query(pattern="^(png|rgba)$")] = "png") -> Response:
        """The person's alpha matte as a grey PNG, or (``?format=rgba``) the person cut out on transparency.
        Send a JPEG, PNG, WebP or BMP as the multipart field ``image`` or as the raw body."""
        data, _ = await read_upload(request, "image")
        w, h = probe(data, "image")
        # a cut-out holds the photo at full size, its alpha and a 4-channel copy: as much as a composite
        with budget.hold(w * h / 1e6 * (1 if format == "png" else 2)):
            # a grey matte needs the photo at the matte's working size only: a large JPEG decodes reduced
            notes: list[str] = []
            img = await decode(data, "image", REFINE_MAX_MP if format == "png" else None, notes)
            if (img.shape[0] > img.shape[1]) != (h > w):      # turned upright by its EXIF orientation
                w, h = h, w
            a8 = await run_in_threadpool(_full_size, to_uint8(await alpha_for(img)), (w, h))
            out = a8 if format == "png" else np.dstack([img, a8])
            return Response(await run_in_threadpool(encode, out, "png"), media_type="image/png",
                            headers=warning_header(notes))

    @app.post("/v1/composite", dependencies=[Depends(require_key)],
              responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}})
    async def composite(request: Request, background: str | None = None,
                        format: Annotated[str | None, Query(pattern="^(jpeg|jpg|png)$")] = None) -> Response:
        """The person on another background: ``background`` = a bundled name (see ``/v1/backgrounds``),
        ``blur[:1-100]``, ``color:#RRGGBB``, or an uploaded image as the multipart field
        ``background_file``. JPEG unless ``?format=png`` or ``Accept: image/png``."""
        data, fields = await read_upload(request, "image")
        spec = background or fields.get("background") or "blur"
        if not isinstance(spec, str):
            raise ApiError(400, "send background as a text field (a name, blur or color:#RRGGBB), or an image as "
                                "the file field background_file")
        bg_upload = fields.get("background_file")
        bg_data = await read_part(bg_upload) if bg_upload is not None and not isinstance(
            bg_upload, str) else None
        w, h = probe(data, "image")
        bw, bh = probe(bg_data, "background image") if bg_data is not None else (0, 0)
        with budget.hold((w * h * 2 + bw * bh) / 1e6):          # a composite holds about twice a matte
            notes: list[str] = []
            img = await decode(data, "image", None, notes)
            size = (img.shape[1], img.shape[0])
            if bg_data is not None:
                bg = ImageBackground(image=await decode(bg_data, "background image", None, notes), label="upload",
                                     fit=size)
            else:
                bg = resolve_background(str(spec), backgrounds, size)
            alpha = await run_in_threadpool(_full_size, await alpha_for(img), size)
            out = await run_in_threadpool(Compositor(), img, alpha, bg)
            del alpha, img
            fmt = format or ("png" if "image/png" in request.headers.get("accept", "") else "jpeg")
            fmt = "png" if fmt == "png" else "jpeg"
            return Response(await run_in_threadpool(encode, out, fmt), media_type=f"image/{fmt}",
                            headers=warning_header(notes))

    @app.get("/v1/backgrounds")
    async def list_backgrounds() -> dict:
        """Names of the bundled backgrounds (and the other forms ``background`` takes)."""
        return {"bundled": list(backgrounds), "other": ["blur", "blur:1-100", "color:#RRGGBB"]}

    @app.get("/v1/backgrounds/{name}.jpg", include_in_schema=False)
    async def background_preview(name: str) -> Response:
        if name not in backgrounds:                # names only: nothing outside the bundled folder
            raise ApiError(404, f"no bundled background {quoted(name)}")
        return FileResponse(backgrounds[name])

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Model and broker state: 200 when requests can be served, else 503."""
        ok, detail = await run_in_threadpool(runner.healthy)        # a broker call may wait: not on the loop
        depth = await run_in_threadpool(runner.depth)
        return JSONResponse({"ok": ok, "model": f"{meta.name} v{meta.version}", "detail": detail,
                             "queue_depth": depth}, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_text() -> Response:
        metrics.queue_depth.set(await run_in_threadpool(runner.depth))
        for size, n in (await run_in_threadpool(getattr(runner, "batch_sizes", lambda: {}))).items():
            metrics.worker_batches.labels(str(size)).set(n)
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    return app


def spool_failed(exc: OSError) -> ApiError:
    """The multipart parser could not write a large part to its temporary file (a full or read-only
    TMPDIR): the server's trouble, said plainly to the client (503) and with the details in the log."""
    import tempfile

    log.error("cannot spool an upload to a temporary file in %s: %s (is it full? set TMPDIR to a folder "
              "with space)", tempfile.gettempdir(), exc)
    return ApiError(503, "the server has no temporary disk space for the upload: retry in a moment",
                    {"Retry-After": "10"})


def resolve_background(spec: str, bundled: dict[str, Path], fit: tuple[int, int]):
    """A bundled name, blur or colour; ApiError 400 for anything else (no paths from clients)."""
    if spec in bundled:
        return parse_background(str(bundled[spec]), fit=fit)
    bs = None
    if spec.split(":", 1)[0].strip().lower() in MADE_KINDS:      # never a path from a client: no file look-up
        try:
            bs = BackgroundSpec.parse(spec)
        except BackgroundError:
            pass
    if bs is None or bs.kind == "file":
        raise ApiError(400, f"background {quoted(spec)} is not a bundled name ({', '.join(bundled)}), {MADE_SYNTAX}")
    return parse_background(bs)


def warning_header(notes: list[str]) -> dict[str, str]:
    """``X-Image-Warning`` with what was wrong with an image that was still processed (a truncated JPEG)."""
    return {"X-Image-Warning": "; ".join(notes)} if notes else {}


def quoted(value: str, limit: int = QUOTE_CHARS) -> str:
    """``value`` as an error message quotes it: its start only, so a huge value is never echoed back."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


_REFINE = RefineSettings(temporal=0.0)
BODY_TIMEOUTS = 6              # a whole body must arrive within this many read timeouts
REFINE_MAX_MP = 4.0            # edges are refined on at most this many megapixels; the alpha is scaled up after


def _refine(prob_u8: np.ndarray, img: np.ndarray) -> np.ndarray:
    """The refined alpha at ``img``'s size, or at REFINE_MAX_MP of it for a larger photo."""
    h, w = img.shape[:2]
    if w * h > REFINE_MAX_MP * 1e6:
        s = (REFINE_MAX_MP * 1e6 / (w * h)) ** 0.5
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    refiner = MaskRefiner(_REFINE, max_work_pixels=int(REFINE_MAX_MP * 1e6))    # a photo: the full detail
    return refiner(prob_u8.astype(np.float32) * (1 / 255.0), img)


def _full_size(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return alpha if (alpha.shape[1], alpha.shape[0]) == size else cv2.resize(alpha, size,
                                                                              interpolation=cv2.INTER_LINEAR)


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

