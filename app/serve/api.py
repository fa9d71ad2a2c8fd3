"""The HTTP API (FastAPI): ``/v1/matte``, ``/v1/composite``, ``/healthz``, ``/metrics``, the page at
``/`` and the OpenAPI docs at ``/docs``. Decoding, refinement and compositing run in worker
threads; the model runs behind a ``Runner`` (in this process, or Redis workers). ``create_app`` wires
a ``Service`` (what one request needs) to the error handlers, the middleware and the routes."""
from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from bgswap.inference.background_spec import BLUR_RANGE, MADE_KINDS, MADE_SYNTAX, BackgroundError, BackgroundSpec
from bgswap.inference.backgrounds import ImageBackground, parse_background
from bgswap.inference.compose import Compositor
from bgswap.inference.media import media_kind
from bgswap.inference.model_meta import ModelMeta
from bgswap.inference.refine import MaskRefiner, RefineSettings, to_uint8
from bgswap.inference.resources import bundled_backgrounds
from bgswap.inference.segmenter import model_dir_for

from .batching import QueueFull, Runner, RunnerUnavailable
from .budgets import MemoryBudget
from .config import ServeConfig
from .errors import ApiError, quoted
from .images import encode
from .metrics import Metrics
from .uploads import Uploads

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
PUBLIC_PATHS = frozenset({"/", "/healthz", "/metrics"})   # answer without the key; see the README
KEY_ERROR = "missing or wrong X-API-Key header"
REFINE_MAX_MP = 4.0            # edges are refined on at most this many megapixels; the alpha is scaled up after
_REFINE = RefineSettings(temporal=0.0)
OTHER_BACKGROUNDS = ["blur", f"blur:{BLUR_RANGE[0]}-{BLUR_RANGE[1]}", "color:#RRGGBB"]


def bundled_images() -> dict[str, Path]:
    """Name (file stem) -> file, for the still images shipped with the app."""
    return {p.stem: p for p in bundled_backgrounds() if media_kind(p) == "image"}


@dataclass
class Service:
    """What a request needs: the settings, the model's runner and meta.json, the bundled backgrounds,
    the metrics, the upload reader and the memory budget."""

    config: ServeConfig
    runner: Runner
    meta: ModelMeta
    metrics: Metrics = field(default_factory=Metrics)
    backgrounds: dict[str, Path] = field(default_factory=bundled_images)

    def __post_init__(self) -> None:
        self.uploads = Uploads(self.config, self.metrics)
        self.budget = MemoryBudget(self.config.max_inflight_mp)

    def key_matches(self, x_api_key: str | None) -> bool:
        """Whether a request with this X-API-Key header may be served (always, when no key is set)."""
        # header values arrive as latin-1 text: compare the raw bytes with the key's UTF-8
        key = self.config.api_key
        return not key or bool(x_api_key) and hmac.compare_digest(x_api_key.encode("latin-1", "replace"),
                                                                   key.encode("utf-8"))

    async def alpha_for(self, img: np.ndarray) -> np.ndarray:
        """The refined person alpha (float32) at ``img``'s size, or at most REFINE_MAX_MP of it."""
        config, metrics = self.config, self.metrics
        in_h, in_w = self.meta.input_shape(img.shape[:2])
        small = await run_in_threadpool(cv2.resize, img, (in_w, in_h), interpolation=cv2.INTER_AREA)
        deadline = time.monotonic() + config.deadline_s
        try:
            prob = await asyncio.wait_for(self.runner.infer(small, deadline), timeout=config.deadline_s)
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


def create_app(config: ServeConfig, runner: Runner) -> FastAPI:
    config.check()
    svc = Service(config, runner, ModelMeta.load(model_dir_for(config.model_dir)))  # the workers' model
    app = FastAPI(title="bgswap", version=svc.meta.version,
                  description="Cut the person out of a photo, or put them on another background.")
    app.state.metrics, app.state.runner = svc.metrics, runner
    if hasattr(runner, "on_batch"):                 # the embedded batcher reports its model calls
        runner.on_batch = svc.metrics.on_batch
    _add_error_handlers(app)
    _add_middleware(app, svc)
    _add_photo_routes(app, svc)
    _add_info_routes(app, svc)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is JSON: ``{"error": message}``."""
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


def _add_middleware(app: FastAPI, svc: Service) -> None:
    """The key check for every route but the public ones, and each request's counting, timing and clean-up."""
    @app.middleware("http")
    async def public_routes_only_without_a_key(request: Request, call_next):
        """With a key set, only PUBLIC_PATHS answer without it: the API docs, the OpenAPI schema, the
        background listings and unknown paths (401, not 404: routes cannot be probed) need it too."""
        if request.url.path not in PUBLIC_PATHS and not svc.key_matches(request.headers.get("x-api-key")):
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
            svc.metrics.errors.labels("internal").inc()
            response = JSONResponse({"error": "internal error: see the server's log"}, status_code=500)
        finally:
            svc.uploads.bodies.give(request.state)
            form = getattr(request.state, "form", None)
            if form is not None:                  # starlette leaves a parsed form's temporary files open
                request.state.form = None
                await form.close()
        if endpoint:
            svc.metrics.requests.labels(endpoint, str(response.status_code)).inc()
            svc.metrics.latency.labels(endpoint).observe(time.perf_counter() - t)
        return response


def _add_photo_routes(app: FastAPI, svc: Service) -> None:
    """``/v1/matte`` and ``/v1/composite``: a photo in, its matte or composite out."""

    def require_key(x_api_key: Annotated[str | None, Header()] = None) -> None:
        """The photo routes' check (declared per route, so the API docs show the header)."""
        if not svc.key_matches(x_api_key):
            raise ApiError(401, KEY_ERROR)

    @app.post("/v1/matte", dependencies=[Depends(require_key)], responses={200: {"content": {"image/png": {}}}})
    async def matte(request: Request, format: Annotated[str, Query(pattern="^(png|rgba)$")] = "png") -> Response:
        """The person's alpha matte as a grey PNG, or (``?format=rgba``) the person cut out on transparency.
        Send a JPEG, PNG, WebP or BMP as the multipart field ``image`` or as the raw body."""
        data, _ = await svc.uploads.read_upload(request, "image")
        w, h = svc.uploads.probe(data, "image")
        # a cut-out holds the photo at full size, its alpha and a 4-channel copy: as much as a composite
        with svc.budget.hold(w * h / 1e6 * (1 if format == "png" else 2)):
            # a grey matte needs the photo at the matte's working size only: a large JPEG decodes reduced
            notes: list[str] = []
            img = await svc.uploads.decode(data, "image", REFINE_MAX_MP if format == "png" else None, notes)
            if (img.shape[0] > img.shape[1]) != (h > w):      # turned upright by its EXIF orientation
                w, h = h, w
            a8 = await run_in_threadpool(_full_size, to_uint8(await svc.alpha_for(img)), (w, h))
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
        data, fields = await svc.uploads.read_upload(request, "image")
        spec = background or fields.get("background") or "blur"
        if not isinstance(spec, str):
            raise ApiError(400, "send background as a text field (a name, blur or color:#RRGGBB), or an image as "
                                "the file field background_file")
        bg_upload = fields.get("background_file")
        bg_data = await svc.uploads.read_part(bg_upload) if bg_upload is not None and not isinstance(
            bg_upload, str) else None
        w, h = svc.uploads.probe(data, "image")
        bw, bh = svc.uploads.probe(bg_data, "background image") if bg_data is not None else (0, 0)
        with svc.budget.hold((w * h * 2 + bw * bh) / 1e6):          # a composite holds about twice a matte
            notes: list[str] = []
            img = await svc.uploads.decode(data, "image", None, notes)
            size = (img.shape[1], img.shape[0])
            if bg_data is not None:
                bg = ImageBackground(image=await svc.uploads.decode(bg_data, "background image", None, notes), label="upload",
                                     fit=size)
            else:
                bg = resolve_background(str(spec), svc.backgrounds, size)
            alpha = await run_in_threadpool(_full_size, await svc.alpha_for(img), size)
            out = await run_in_threadpool(Compositor(), img, alpha, bg)
            del alpha, img
            fmt = format or ("png" if "image/png" in request.headers.get("accept", "") else "jpeg")
            fmt = "png" if fmt == "png" else "jpeg"
            return Response(await run_in_threadpool(encode, out, fmt), media_type=f"image/{fmt}",
                            headers=warning_header(notes))


def _add_info_routes(app: FastAPI, svc: Service) -> None:
    """The backgrounds, health, metrics and the page."""
    @app.get("/v1/backgrounds")
    async def list_backgrounds() -> dict:
        """Names of the bundled backgrounds (and the other forms ``background`` takes)."""
        return {"bundled": list(svc.backgrounds), "other": OTHER_BACKGROUNDS}

    @app.get("/v1/backgrounds/{name}.jpg", include_in_schema=False)
    async def background_preview(name: str) -> Response:
        if name not in svc.backgrounds:                # names only: nothing outside the bundled folder
            raise ApiError(404, f"no bundled background {quoted(name)}")
        return FileResponse(svc.backgrounds[name])

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Model and broker state: 200 when requests can be served, else 503."""
        ok, detail = await run_in_threadpool(svc.runner.healthy)        # a broker call may wait: not on the loop
        depth = await run_in_threadpool(svc.runner.depth)
        return JSONResponse({"ok": ok, "model": f"{svc.meta.name} v{svc.meta.version}", "detail": detail,
                             "queue_depth": depth}, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_text() -> Response:
        svc.metrics.queue_depth.set(await run_in_threadpool(svc.runner.depth))
        for size, n in (await run_in_threadpool(getattr(svc.runner, "batch_sizes", lambda: {}))).items():
            svc.metrics.worker_batches.labels(str(size)).set(n)
        return Response(svc.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))


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
