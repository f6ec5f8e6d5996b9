"""HTTP serving: a FastAPI app over an engine (PyTorch or ONNX Runtime), and a page to draw digits on.

    POST /predict   a PNG/JPEG (raw body, or up to 16 multipart files), or JSON pixels: {"pixels": [784 values]}
                    or a batch {"pixels": [[784 values], ...]} (28x28 nested lists are accepted too), values 0..255;
                    answers the digit, the ten probabilities and the model's identity for each image; with
                    `--reject-below` also "not_a_digit" and "typicality" (the digit is null when rejected)
    POST /explain   one image as for /predict: the digit, the 28x28 input the model saw and its Integrated Gradients
                    map toward that digit (the drawing page's "Why?"; PyTorch engine and Captum only, else 501)
    GET  /          the drawing page (static/draw.html: no build step, no external resources)
    GET  /health    liveness and the model's identity;  GET /docs, /openapi.json  the schema

Photos and drawings are converted the way MNIST was made (preprocess.py, the one specification that the static web
page shares): grayscale, inverted when dark-on-light, cropped to the ink's bounding box, scaled to fit 20x20 keeping
the aspect ratio, and placed in 28x28 so the centre of mass sits in the middle.

The server is built to be left running on a laptop while its user browses the web:
- every malformed request gets a 4xx with a JSON {"error": ...}, and an unexpected failure a JSON 500;
- bodies over 4 MiB are refused; an image's size is read from its header and refused over 16 Mpx before anything
  is decoded, at most 16 files and 32 Mpx per request; images are decoded and preprocessed in worker threads, at
  most one per CPU core at a time, so /health answers while large images are worked on;
- a request head must arrive within 10 s and its body within 15 s, or the connection is closed (`ServeConfig`;
  `--header-timeout` and `--body-timeout` for clients on slow links); at most 64 connections are served at once
  (uvicorn answers 503 beyond); SIGTERM stops the server within 5 s;
- a server bound to a loopback address answers only requests whose Host is a loopback name (no DNS rebinding),
  and refuses POSTs from other sites (by `Sec-Fetch-Site` and `Origin`), which any web page could otherwise send
  to 127.0.0.1 as a "simple" request without a CORS preflight;
- the model's identity names the engine, the model file's name and its epoch, never an absolute path.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from .config import ServeConfig
from .preprocess import NoInk, mnist_style

MAX_BODY_BYTES = 4 * 1024 * 1024
DRAIN_BYTES = 64 * 1024 * 1024  # oversized bodies up to this are read and dropped before the 413 (see read_body)
MAX_BATCH = 1024  # JSON images per request
MAX_FILES = 16  # multipart files per request
MAX_IMAGE_PIXELS = 4096 * 4096  # per image, read from the header before decoding (a 12 Mpx phone photo fits)
MAX_REQUEST_PIXELS = 2 * MAX_IMAGE_PIXELS
WORKING_SIDE = 1024  # larger images are reduced to this before preprocessing: a digit needs no more
MAX_CONNECTIONS = 64
SHUTDOWN_TIMEOUT_S = 5
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
PAGE = Path(__file__).parent / "static" / "draw.html"


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def error_response(status: int, message: str) -> JSONResponse:
    """A JSON error; a 408 or 413 also closes the connection (the rest of that body is never read)."""
    headers = {"Connection": "close"} if status in (408, 413) else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


# ---------------------------------------------------------------------------------------------------------- images
def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """PNG/JPEG bytes -> uint8 (28, 28). The size is checked from the header before any pixel is decoded; JPEGs are
    decoded at a reduced scale where that suffices, and anything larger than WORKING_SIDE is reduced first."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise BadRequest(400, f"{name}: empty upload")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ("PNG", "JPEG"):
                raise BadRequest(415, f"{name}: {image.format} image, expected PNG or JPEG")
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise BadRequest(413, f"{name}: {width} x {height} pixels, at most {MAX_IMAGE_PIXELS:,} per image")
            if image.format == "JPEG":
                image.draft("RGB", (WORKING_SIDE, WORKING_SIDE))  # DCT scaling: decodes 1/2..1/8 of the pixels
            image.load()
            image.thumbnail((WORKING_SIDE, WORKING_SIDE))
            return mnist_style(image)
    except NoInk as e:
        raise BadRequest(422, f"{name}: {e}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise BadRequest(400, f"{name}: not a decodable PNG or JPEG image ({str(e)[:100]})") from None


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from an image's header alone ((0, 0) when unreadable: decoding reports the problem)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # any unreadable header: decode_image gives the precise message
        return 0, 0


def pixels_from_json(data) -> np.ndarray:
    """{"pixels": one image or a list of images}; an image is 784 numbers or 28 rows of 28, each 0..255."""
    if isinstance(data, dict):
        if set(data) != {"pixels"}:
            raise BadRequest(422, f"JSON object keys {sorted(data)[:5]}, expected exactly 'pixels'")
        data = data["pixels"]
    try:
        array = np.asarray(data, dtype=np.float64)
    except OverflowError:  # a JSON integer too large for a float
        raise BadRequest(422, "pixel values must be numbers within 0..255") from None
    except (ValueError, TypeError):
        raise BadRequest(422, "pixels must be numbers in nested lists of equal lengths") from None
    if array.dtype != np.float64 or array.size == 0:
        raise BadRequest(422, "pixels must be a non-empty list of numbers")
    if array.shape[-2:] == (28, 28):
        array = array.reshape(*array.shape[:-2], 784)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 784:
        raise BadRequest(422, f"pixels have shape {list(array.shape)}, expected 784 values per image (or 28x28)")
    if len(array) > MAX_BATCH:
        raise BadRequest(413, f"{len(array)} images in one request, at most {MAX_BATCH}")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
        raise BadRequest(422, "pixel values must be finite and within 0..255")
    return array.reshape(-1, 28, 28)


async def body_chunks(request: Request):
    """The request body's chunks, with a deadline for the whole body: a client that declares a body and then
    stalls is answered 408 and disconnected instead of holding its connection."""
    loop = asyncio.get_running_loop()
    seconds = request.app.state.config.body_timeout_s
    deadline = loop.time() + seconds
    chunks = request.stream().__aiter__()
    while True:
        try:
            yield await asyncio.wait_for(chunks.__anext__(), timeout=max(deadline - loop.time(), 0.001))
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            raise BadRequest(408, f"request body not received within {seconds:g} s") from None


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    too_big = BadRequest(413, f"request body over {MAX_BODY_BYTES:,} bytes")
    if declared is not None and not declared.isdigit():
        raise BadRequest(400, "invalid Content-Length")
    if declared is not None and int(declared) > MAX_BODY_BYTES:
        if int(declared) <= DRAIN_BYTES:  # read and drop it, so the client is listening when the 413 comes
            async for _ in body_chunks(request):
                pass
        raise too_big
    body = bytearray()
    async for chunk in body_chunks(request):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_big
    if not body:
        raise BadRequest(400, 'empty request body: send a PNG/JPEG image or JSON {"pixels": [...]}')
    return bytes(body)


async def uploads_from_form(request: Request, body: bytes) -> list[tuple[str, bytes]]:
    """(name, bytes) of each file in a multipart body that read_body has already read (and size-checked)."""

    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=MAX_FILES)
    except Exception as e:  # malformed multipart, or more files than max_files
        if "too many files" in str(e).lower():
            raise BadRequest(413, f"more than {MAX_FILES} files in one request") from None
        raise BadRequest(400, f"malformed multipart body ({str(e)[:100]})") from None
    uploads = [value for _, value in form.multi_items() if hasattr(value, "read")]
    if not uploads:
        raise BadRequest(422, "multipart body has no file: send the image in a file field")
    return [(f.filename or "upload", await f.read()) for f in uploads]


def decode_images(files: list[tuple[str, bytes]]) -> np.ndarray:
    """Decode several uploads (in a worker thread), refusing the request over its pixel budget before decoding."""
    sizes = [image_size(data) for _, data in files]
    for (name, _), (width, height) in zip(files, sizes):
        if width * height > MAX_IMAGE_PIXELS:
            raise BadRequest(413, f"{name}: {width} x {height} pixels, at most {MAX_IMAGE_PIXELS:,} per image")
    total = sum(width * height for width, height in sizes)
    if total > MAX_REQUEST_PIXELS:
        raise BadRequest(413, f"{total:,} pixels in one request, at most {MAX_REQUEST_PIXELS:,}")
    return np.stack([decode_image(data, name) for name, data in files])


async def images_from_request(request: Request, cpu: asyncio.Semaphore) -> np.ndarray:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/json", "image/png", "image/jpeg", "multipart/form-data"):
        raise BadRequest(
            415,
            f"content type '{content_type or 'none'}', expected application/json, image/png, "
            "image/jpeg or multipart/form-data",
        )
    body = await read_body(request)  # enforces the size and time limits before anything is parsed
    if content_type == "application/json":
        try:
            return pixels_from_json(json.loads(body))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise BadRequest(400, "body is not valid JSON") from None
    files = await uploads_from_form(request, body) if content_type == "multipart/form-data" else [("image", body)]
    async with cpu:  # one decode per core at a time: the event loop and /health stay free
        return await run_in_threadpool(decode_images, files)


# ---------------------------------------------------------------------------------------------------------- guards
def host_name(value: str) -> str:
    """'127.0.0.1:8000' -> '127.0.0.1', '[::1]:80' -> '::1', 'localhost' -> 'localhost'."""
    return (urlsplit(f"//{value}").hostname or "").lower()


def refusal(scope: dict, allowed_hosts: set[str] | None) -> tuple[int, str] | None:
    """Why a request must not reach the app: a Host that is not this server's (DNS rebinding), or a POST sent by
    another site's page. None lets it through."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    host = headers.get("host", "")
    if allowed_hosts is not None and host_name(host) not in allowed_hosts:
        return 421, f"Host '{host[:60]}' is not served here (allowed: {', '.join(sorted(allowed_hosts))})"
    if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
        return None
    if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return 403, "cross-site requests are refused: use the page this server serves, or a client that is not a page"
    origin = headers.get("origin")
    if origin is not None and (origin == "null" or urlsplit(origin).netloc.lower() != host.lower()):
        return 403, f"requests from origin '{origin[:60]}' are refused: only this server's own page may post"
    return None


class LocalGuard:
    """ASGI middleware applying `refusal` before the app sees a request."""

    def __init__(self, app, allowed_hosts: set[str] | None):
        self.app, self.allowed_hosts = app, allowed_hosts

    async def __call__(self, scope, receive, send):
        reason = refusal(scope, self.allowed_hosts) if scope["type"] == "http" else None
        if reason is None:
            return await self.app(scope, receive, send)
        await error_response(*reason)(scope, receive, send)


class TimedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request head: a client that connects and then sends
    its headers slowly (or not at all) is disconnected after `header_timeout_s` seconds. uvicorn's own keep-alive
    timeout only runs between requests. uvicorn builds the protocol itself, so the deadline is a class attribute:
    `timed` gives the subclass for a deadline."""

    header_timeout_s = ServeConfig.header_timeout_s

    @classmethod
    def timed(cls, header_timeout_s: float) -> type[TimedH11Protocol]:
        return type(cls.__name__, (cls,), {"header_timeout_s": header_timeout_s})

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.arm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.arm_head_timer()

    def arm_head_timer(self) -> None:
        self.loop.call_later(self.header_timeout_s, self.head_timeout, self.cycle)

    def head_timeout(self, cycle_then) -> None:
        waiting = self.cycle is cycle_then and (self.cycle is None or self.cycle.response_complete)
        if waiting and not self.transport.is_closing():  # no new request head arrived in time
            self.transport.close()


# ---------------------------------------------------------------------------------------------------------- app
def answer_errors_in_json(app: FastAPI) -> None:
    """Every error as {"error": ...} with its status: ours, Starlette's (404, 405), FastAPI's validation (422), and
    a bug's 500, which names only the exception's type."""

    @app.exception_handler(BadRequest)
    async def bad_request(_request, error: BadRequest):
        return error_response(error.status, error.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, error: StarletteHTTPException):
        return error_response(error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request, error: RequestValidationError):
        return error_response(422, str(error.errors())[:300])

    @app.exception_handler(Exception)
    async def unexpected(_request, error: Exception):  # a bug: still JSON, and no internals in the answer
        return error_response(500, f"internal error ({type(error).__name__})")


def create_app(engine, allowed_hosts: set[str] | None = None, rejector=None, config=ServeConfig()) -> FastAPI:
    """The app over `engine`; `allowed_hosts`: Host names served (None: any, for a server bound to a LAN address);
    `rejector` (calibration.Rejector): answer "not a digit" for images it rejects; `config`: the body's deadline."""
    app = FastAPI(title="digitlab", description="Handwritten digit recognition", version="1")
    app.state.config = config
    from .engines import saliency_model, saliency_possible

    cpu = asyncio.Semaphore(os.cpu_count() or 1)
    explainer = functools.cache(lambda: saliency_model(engine))  # loaded on the first "Why?"

    answer_errors_in_json(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return PAGE.read_text()

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": engine.identity, "explain": saliency_possible(engine),
                "reject_below": None if rejector is None else rejector.threshold}  # fmt: skip

    @app.post("/predict", openapi_extra={"requestBody": PREDICT_BODY})
    async def predict(request: Request) -> dict:
        images = await images_from_request(request, cpu)  # (N, 28, 28)
        async with cpu:
            probabilities = await run_in_threadpool(engine.predict_proba, images[:, None].astype(np.float32))
            typical, rejected = (
                await run_in_threadpool(rejector.rejected, images) if rejector else (None, np.zeros(len(images), bool))
            )
        predictions = [
            {"digit": None if no else int(p.argmax()), "probabilities": [round(float(v), 6) for v in p]}
            for p, no in zip(probabilities, rejected)
        ]
        if rejector is not None:
            for answer, t, no in zip(predictions, typical, rejected):
                answer.update(not_a_digit=bool(no), typicality=round(float(t), 6))
        answer = {"model": engine.identity, "predictions": predictions}
        return {**answer, **predictions[0]} if len(predictions) == 1 else answer

    @app.post("/explain", openapi_extra={"requestBody": EXPLAIN_BODY})
    async def explain(request: Request) -> dict:
        from .explain import captum_available, explain_one

        images = await images_from_request(request, cpu)
        if len(images) != 1:
            raise BadRequest(422, f"explain takes one image, got {len(images)}")
        model = explainer()
        if model is None:
            raise BadRequest(501, "saliency needs the PyTorch model: serve a run folder, not an ensemble or .onnx file")
        if not captum_available():
            raise BadRequest(501, "saliency needs Captum: pip install 'digitlab[explain]'")
        async with cpu:
            answer = await run_in_threadpool(explain_one, model, images[0])
        return {"model": engine.identity, **answer}

    app.add_middleware(LocalGuard, allowed_hosts=allowed_hosts)
    return app


PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["pixels"],
                "properties": {
                    "pixels": {"type": "array", "description": "784 values 0..255 (or 28x28), or a list of such images"}
                },
            }
        },
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
            }
        },
    },
}


EXPLAIN_BODY = {  # one image, as for /predict
    "required": True,
    "content": {k: v for k, v in PREDICT_BODY["content"].items() if k != "multipart/form-data"},
}


def serve(
    target: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    engine: str = "auto",
    reject_below=None,
    tta=None,
    config: ServeConfig = ServeConfig(),
) -> None:
    import uvicorn

    from .engines import load_engine

    allowed = LOOPBACK_NAMES | {host_name(host)} if host_name(host) in LOOPBACK_NAMES else None
    from .calibration import Rejector

    rejector = Rejector(target, reject_below) if reject_below else None
    app = create_app(load_engine(target, engine, "cpu", tta), allowed, rejector, config)
    print(f"digitlab: serving {target} on http://{host}:{port}/  (draw at /, API docs at /docs)", flush=True)
    limits = {"limit_concurrency": MAX_CONNECTIONS, "timeout_graceful_shutdown": SHUTDOWN_TIMEOUT_S}
    protocol = TimedH11Protocol.timed(config.header_timeout_s)
    settings = uvicorn.Config(app, host=host, port=port, log_level="warning", http=protocol, **limits)
    uvicorn.Server(settings).run()
