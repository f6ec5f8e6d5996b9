"""HTTP serving: a FastAPI app over an engine (PyTorch or ONNX Runtime), and a page to draw digits on.

    POST /predict   a PNG/JPEG (raw body, or up to 16 multipart files), or JSON pixels: {"pixels": [784 values]}
                    or a batch {"pixels": [[784 values], ...]} (28x28 nested lists are accepted too), values 0..255;
                    answers the digit, the ten probabilities and the model's identity for each image; with
                    `--reject-below` also "not_a_digit" and "typicality" (the digit is null when rejected)
    POST /explain   one image as for /predict: the digit, the 28x28 input the model saw and its Integrated Gradients
                    map toward that digit (the drawing page's "Why?"; PyTorch engine and Captum only, else 501)
    GET  /          the drawing page (static/draw.html: no build step, no external resources)
    GET  /health    liveness and the model's identity;  GET /docs, /openapi.json  the schema

Requests are read and checked in uploads.py (sizes, deadlines, formats); photos and drawings are converted the way
MNIST was made (preprocess.py, the one specification that the static web page shares).

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
import errno
import functools
import os
import socket
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
from .errors import DigitlabError
from .uploads import BadRequest, images_from_request

MAX_CONNECTIONS = 64
SHUTDOWN_TIMEOUT_S = 5
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
PAGE = Path(__file__).parent / "static" / "draw.html"


def error_response(status: int, message: str) -> JSONResponse:
    """A JSON error; a 408 or 413 also closes the connection (the rest of that body is never read)."""
    headers = {"Connection": "close"} if status in (408, 413) else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


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


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound before anything is loaded or announced: a port out of range, a busy one or an
    address this machine does not have is one clear error. An IPv6 host is bound as IPv6, any other as IPv4, as
    uvicorn binds them."""
    if not 0 <= port <= 65535:
        raise DigitlabError(f"port {port} must be in [0, 65535]")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:  # busy port, foreign address, unknown host name (socket.gaierror)
        sock.close()
        hint = ": another program is listening there, choose another --port" if e.errno == errno.EADDRINUSE else ""
        raise DigitlabError(f"cannot serve on {host}:{port} ({e.strerror or e}){hint}") from None
    sock.set_inheritable(True)
    return sock


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

    from .calibration import Rejector
    from .engines import load_engine

    allowed = LOOPBACK_NAMES | {host_name(host)} if host_name(host) in LOOPBACK_NAMES else None
    with listening_socket(host, port) as sock:
        rejector = Rejector(target, reject_below) if reject_below else None
        app = create_app(load_engine(target, engine, "cpu", tta), allowed, rejector, config)
        port = sock.getsockname()[1]  # the one the system chose for --port 0
        print(f"digitlab: serving {target} on http://{host}:{port}/  (draw at /, API docs at /docs)", flush=True)
        limits = {"limit_concurrency": MAX_CONNECTIONS, "timeout_graceful_shutdown": SHUTDOWN_TIMEOUT_S}
        protocol = TimedH11Protocol.timed(config.header_timeout_s)
        settings = uvicorn.Config(app, host=host, port=port, log_level="warning", http=protocol, **limits)
        uvicorn.Server(settings).run(sockets=[sock])
