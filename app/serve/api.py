"""The HTTP API (FastAPI): ``/v1/matte``, ``/v1/composite``, ``/healthz``, ``/metrics``, the page at
``/`` and the OpenAPI docs at ``/docs``. Decoding, refinement and compositing run in worker
threads; the model runs behind a ``Runner`` (in this process, or Redis workers)."""
from __future__ import annotations

import asyncio
import hmac
import logging
import time
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from inference.background_spec import BackgroundError, BackgroundSpec
from inference.compose import Compositor, ImageBackground, parse_background
from inference.media import media_kind
from inference.model_meta import ModelMeta
from inference.refine import MaskRefiner, RefineSettings
from inference.resources import bundled_backgrounds, default_model_dir

from .batching import QueueFull, Runner
from .config import ServeConfig
from .images import ImageRejected, decode_upload, encode
from .metrics import Metrics

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def bundled_images() -> dict[str, Path]:
    """Name (file stem) -> file, for the still images shipped with the app."""
    return {p.stem: p for p in bundled_backgrounds() if media_kind(p) == "image"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        self.status, self.message, self.headers = status, message, headers or {}


def create_app(config: ServeConfig, runner: Runner) -> FastAPI:
    config.check()
    meta = ModelMeta.load(Path(config.model_dir) if config.model_dir else default_model_dir())
    in_h, in_w = meta.input_size
    metrics = Metrics()
    backgrounds = bundled_images()
    app = FastAPI(title="bgswap", version=meta.version,
                  description="Cut the person out of a photo, or put them on another background.")
    app.state.metrics, app.state.runner = metrics, runner
    if hasattr(runner, "on_batch"):                 # the embedded batcher reports its model calls
        runner.on_batch = metrics.on_batch

    def require_key(x_api_key: Annotated[str | None, Header()] = None) -> None:
        if config.api_key and not (x_api_key and hmac.compare_digest(x_api_key, config.api_key)):
            raise ApiError(401, "missing or wrong X-API-Key header")

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    async def read_upload(request: Request, field: str) -> tuple[bytes, dict]:
        """The image bytes (multipart ``field`` or the raw body) and the other form fields."""
        ctype = request.headers.get("content-type", "")
        declared = int(request.headers.get("content-length") or 0)
        if declared > config.max_bytes * 2 + 65536:
            raise ApiError(413, f"the request is {declared / 1e6:.1f} MB; the limit is {config.max_bytes / 1e6:.1f} MB")
        if ctype.startswith("multipart/form-data"):
            try:
                form = await request.form(max_files=2, max_fields=10, max_part_size=config.max_bytes + 1)
            except Exception as exc:
                raise ApiError(413 if "size" in str(exc).lower() else 400, f"the form cannot be read: {exc}") from None
            upload = form.get(field)
            if upload is None or isinstance(upload, str):
                raise ApiError(400, f"send the photo as the multipart field '{field}' (or as the raw body)")
            data = await upload.read(config.max_bytes + 1)
            fields = {k: v for k, v in form.items() if k != field}
            return data, fields
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > config.max_bytes:
                raise ApiError(413, f"the image is over the limit of {config.max_bytes / 1e6:.1f} MB")
        return bytes(body), {}

    async def alpha_for(img: np.ndarray) -> np.ndarray:
        small = await run_in_threadpool(cv2.resize, img, (in_w, in_h), interpolation=cv2.INTER_AREA)
        deadline = time.monotonic() + config.deadline_s
        try:
            prob = await asyncio.wait_for(runner.infer(small, deadline), timeout=config.deadline_s)
        except QueueFull:
            metrics.errors.labels("queue_full").inc()
            raise ApiError(503, "the service is busy: retry in a moment", {"Retry-After": "1"}) from None
        except asyncio.TimeoutError:
            metrics.errors.labels("deadline").inc()
            raise ApiError(504, f"no answer from the model within {config.deadline_s:g} s") from None
        return await run_in_threadpool(_refine, prob, img)

    async def decode(data: bytes, what: str) -> np.ndarray:
        try:
            return await run_in_threadpool(decode_upload, data, config.max_bytes, config.max_megapixels, what)
        except ImageRejected as exc:
            metrics.errors.labels(f"bad_{what.replace(' ', '_')}").inc()
            raise ApiError(exc.status, exc.message) from None

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
        if endpoint:
            metrics.requests.labels(endpoint, str(response.status_code)).inc()
            metrics.latency.labels(endpoint).observe(time.perf_counter() - t)
        return response

    @app.post("/v1/matte", dependencies=[Depends(require_key)], responses={200: {"content": {"image/png": {}}}})
    async def matte(request: Request, format: Annotated[str, Query(pattern="^(png|rgba)$")] = "png") -> Response:
        """The person's alpha matte as a grey PNG, or (``?format=rgba``) the person cut out on transparency.
        Send a JPEG, PNG, WebP or BMP as the multipart field ``image`` or as the raw body."""
        data, _ = await read_upload(request, "image")
        img = await decode(data, "image")
        alpha = await alpha_for(img)
        a8 = np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8)
        out = a8 if format == "png" else np.dstack([img, a8])
        return Response(await run_in_threadpool(encode, out, "png"), media_type="image/png")

    @app.post("/v1/composite", dependencies=[Depends(require_key)],
              responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}})
    async def composite(request: Request, background: str | None = None,
                        format: Annotated[str | None, Query(pattern="^(jpeg|jpg|png)$")] = None) -> Response:
        """The person on another background: ``background`` = a bundled name (see ``/v1/backgrounds``),
        ``blur[:1-100]``, ``color:#RRGGBB``, or an uploaded image as the multipart field
        ``background_file``. JPEG unless ``?format=png`` or ``Accept: image/png``."""
        data, fields = await read_upload(request, "image")
        spec = background or fields.get("background") or "blur"
        bg_upload = fields.get("background_file")
        img = await decode(data, "image")
        if bg_upload is not None and not isinstance(bg_upload, str):
            bg_img = await decode(await bg_upload.read(config.max_bytes + 1), "background image")
            bg = ImageBackground(image=bg_img, label="upload", fit=(img.shape[1], img.shape[0]))
        else:
            bg = resolve_background(str(spec), backgrounds, (img.shape[1], img.shape[0]))
        alpha = await alpha_for(img)
        out = await run_in_threadpool(Compositor(), img, alpha, bg)
        fmt = format or ("png" if "image/png" in request.headers.get("accept", "") else "jpeg")
        fmt = "png" if fmt == "png" else "jpeg"
        return Response(await run_in_threadpool(encode, out, fmt), media_type=f"image/{fmt}")

    @app.get("/v1/backgrounds")
    async def list_backgrounds() -> dict:
        """Names of the bundled backgrounds (and the other forms ``background`` takes)."""
        return {"bundled": list(backgrounds), "other": ["blur", "blur:1-100", "color:#RRGGBB"]}

    @app.get("/v1/backgrounds/{name}.jpg", include_in_schema=False)
    async def background_preview(name: str) -> Response:
        if name not in backgrounds:                # names only: nothing outside the bundled folder
            raise ApiError(404, f"no bundled background {name!r}")
        return FileResponse(backgrounds[name])

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Model and broker state: 200 when requests can be served, else 503."""
        ok, detail = runner.healthy()
        return JSONResponse({"ok": ok, "model": f"{meta.name} v{meta.version}", "detail": detail,
                             "queue_depth": runner.depth()}, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_text() -> Response:
        metrics.queue_depth.set(runner.depth())
        for size, n in getattr(runner, "batch_sizes", lambda: {})().items():
            metrics.worker_batches.labels(str(size)).set(n)
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    return app


def resolve_background(spec: str, bundled: dict[str, Path], fit: tuple[int, int]):
    """A bundled name, blur or colour; ApiError 400 for anything else (no paths from clients)."""
    if spec in bundled:
        return parse_background(str(bundled[spec]), fit=fit)
    try:
        bs = BackgroundSpec.parse(spec)
    except BackgroundError:
        bs = None
    if bs is None or bs.kind == "file":
        raise ApiError(400, f"background {spec!r} is not a bundled name ({', '.join(bundled)}), "
                            "blur[:1-100] or color:#RRGGBB")
    return parse_background(bs)


_REFINE = RefineSettings(temporal=0.0)


def _refine(prob_u8: np.ndarray, img: np.ndarray) -> np.ndarray:
    return MaskRefiner(_REFINE)(prob_u8.astype(np.float32) * (1 / 255.0), img)
