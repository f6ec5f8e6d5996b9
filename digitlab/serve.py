"""HTTP serving: a FastAPI app over an engine (PyTorch or ONNX Runtime), and a page to draw digits on.

    POST /predict   a PNG/JPEG (raw body, or one or more multipart files), or JSON pixels: {"pixels": [784 values]}
                    or a batch {"pixels": [[784 values], ...]} (28x28 nested lists are accepted too), values 0..255;
                    answers the digit, the ten probabilities and the model's identity for each image
    GET  /          the drawing page (static/draw.html: no build step, no external resources)
    GET  /health    liveness and the model's identity;  GET /docs, /openapi.json  the schema

Photos and drawings are converted the way MNIST was made: grayscale, inverted when dark-on-light, cropped to the
ink's bounding box, scaled to fit 20x20 keeping the aspect ratio, and placed in 28x28 so the centre of mass sits in
the middle. Every malformed request gets a 4xx with a JSON {"error": ...}; bodies over 4 MiB are refused.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

MAX_BODY_BYTES = 4 * 1024 * 1024
DRAIN_BYTES = 64 * 1024 * 1024  # oversized bodies up to this are read and dropped before the 413 (see read_body)
MAX_BATCH = 1024
MAX_IMAGE_PIXELS = 25_000_000  # decompression bombs: Pillow refuses larger images
PAGE = Path(__file__).parent / "static" / "draw.html"


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


# ---------------------------------------------------------------------------------------------------------- images
def mnist_style(image) -> np.ndarray:
    """A PIL image of one digit -> uint8 (28, 28), light ink on black, as MNIST's digits were prepared."""
    from PIL import Image
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)  # transparent canvas = white paper
    gray = np.asarray(image.convert("L"), dtype=np.float32)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.mean() > 127:  # dark ink on light paper: MNIST is light on dark
        gray, border = 255 - gray, 255 - border
    gray = np.clip(gray - np.median(border), 0, 255)  # the paper's own shade becomes 0
    ink = gray > 0.2 * gray.max() if gray.max() > 0 else np.zeros_like(gray, dtype=bool)
    if gray.max() < 32 or not ink.any():
        raise BadRequest(422, "the image has no visible ink: expected one handwritten digit")
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    crop = gray[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
    scale = 20.0 / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))  # (width, height)
    digit = np.asarray(Image.fromarray(crop.astype(np.uint8)).resize(size, Image.LANCZOS), dtype=np.float32)
    digit = np.clip(digit * (255.0 / max(digit.max(), 1.0)), 0, 255)
    canvas = np.zeros((28, 28), dtype=np.float32)
    top, left = (28 - digit.shape[0]) // 2, (28 - digit.shape[1]) // 2
    canvas[top: top + digit.shape[0], left: left + digit.shape[1]] = digit
    ys, xs = np.indices(canvas.shape)
    mass = canvas.sum()
    shift_y, shift_x = round(13.5 - (ys * canvas).sum() / mass), round(13.5 - (xs * canvas).sum() / mass)
    shifted = np.zeros_like(canvas)
    src = canvas[max(0, -shift_y): 28 - max(0, shift_y), max(0, -shift_x): 28 - max(0, shift_x)]
    shifted[max(0, shift_y): max(0, shift_y) + src.shape[0], max(0, shift_x): max(0, shift_x) + src.shape[1]] = src
    return shifted.round().astype(np.uint8)


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    if not data:
        raise BadRequest(400, f"{name}: empty upload")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ("PNG", "JPEG"):
                raise BadRequest(415, f"{name}: {image.format} image, expected PNG or JPEG")
            image.load()
            return mnist_style(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise BadRequest(400, f"{name}: not a decodable PNG or JPEG image ({str(e)[:100]})") from None


def pixels_from_json(data) -> np.ndarray:
    """{"pixels": one image or a list of images}; an image is 784 numbers or 28 rows of 28, each 0..255."""
    if isinstance(data, dict):
        if set(data) != {"pixels"}:
            raise BadRequest(422, f"JSON object keys {sorted(data)[:5]}, expected exactly 'pixels'")
        data = data["pixels"]
    try:
        array = np.asarray(data, dtype=np.float64)
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


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    too_big = BadRequest(413, f"request body over {MAX_BODY_BYTES:,} bytes")
    if declared is not None and not declared.isdigit():
        raise BadRequest(400, "invalid Content-Length")
    if declared is not None and int(declared) > MAX_BODY_BYTES:
        if int(declared) <= DRAIN_BYTES:  # read and drop it, so the client is listening when the 413 comes
            async for _ in request.stream():
                pass
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_big
    if not body:
        raise BadRequest(400, "empty request body: send a PNG/JPEG image or JSON {\"pixels\": [...]}")
    return bytes(body)


async def images_from_request(request: Request) -> np.ndarray:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/json", "image/png", "image/jpeg", "multipart/form-data"):
        raise BadRequest(415, f"content type '{content_type or 'none'}', expected application/json, image/png, "
                              "image/jpeg or multipart/form-data")
    if content_type == "multipart/form-data":
        body = await read_body(request)  # enforces the size limit, then the form parser reads the same bytes

        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form(max_files=MAX_BATCH)
        except Exception as e:  # malformed multipart
            raise BadRequest(400, f"malformed multipart body ({str(e)[:100]})") from None
        uploads = [value for _, value in form.multi_items() if hasattr(value, "read")]
        if not uploads:
            raise BadRequest(422, "multipart body has no file: send the image in a file field")
        return np.stack([decode_image(await f.read(), f.filename or "upload") for f in uploads])
    body = await read_body(request)
    if content_type == "application/json":
        try:
            return pixels_from_json(json.loads(body))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise BadRequest(400, "body is not valid JSON") from None
    return decode_image(body)[None]


# ---------------------------------------------------------------------------------------------------------- app
def create_app(engine) -> FastAPI:
    app = FastAPI(title="digitlab", description="Handwritten digit recognition", version="1")

    @app.exception_handler(BadRequest)
    async def bad_request(_request, error: BadRequest):
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, error: StarletteHTTPException):
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request, error: RequestValidationError):
        return JSONResponse({"error": str(error.errors())[:300]}, status_code=422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return PAGE.read_text()

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": engine.identity}

    @app.post("/predict", openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "required": ["pixels"], "properties": {"pixels": {
            "type": "array", "description": "784 values 0..255 (or 28x28), or a list of such images"}}}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}}})
    async def predict(request: Request) -> dict:
        images = await images_from_request(request)  # (N, 28, 28)
        probabilities = await run_in_threadpool(engine.predict_proba, images[:, None].astype(np.float32))
        predictions = [{"digit": int(p.argmax()), "probabilities": [round(float(v), 6) for v in p]}
                       for p in probabilities]
        return {"model": engine.identity, "predictions": predictions, **predictions[0]} if len(predictions) == 1 \
            else {"model": engine.identity, "predictions": predictions}

    return app


def serve(target: str, host: str = "127.0.0.1", port: int = 8000, engine: str = "auto") -> None:
    import uvicorn

    from .export import load_engine
    app = create_app(load_engine(target, engine, "cpu"))
    print(f"digitlab: serving {target} on http://{host}:{port}/  (draw at /, API docs at /docs)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
