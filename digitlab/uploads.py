"""What a request to the server carries, read and checked: the body within its size and time limits, then the
images in it (PNG/JPEG, raw or as multipart files, or JSON pixels) as uint8 (N, 28, 28) arrays.

Every problem is a `BadRequest` with its HTTP status and a message that names the file or value at fault; serve.py
answers it as JSON. The limits keep one request from freezing the server: bodies over 4 MiB are refused, an image's
size is read from its header and refused over 16 Mpx before anything is decoded, at most 16 files and 32 Mpx per
request, and a body must arrive within the server's `body_timeout_s`. Photos and drawings are converted the way
MNIST was made (preprocess.py).
"""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from .preprocess import NoInk, mnist_style

MAX_BODY_BYTES = 4 * 1024 * 1024
DRAIN_BYTES = 64 * 1024 * 1024  # oversized bodies up to this are read and dropped before the 413 (see read_body)
MAX_BATCH = 1024  # JSON images per request
MAX_FILES = 16  # multipart files per request
MAX_IMAGE_PIXELS = 4096 * 4096  # per image, read from the header before decoding (a 12 Mpx phone photo fits)
MAX_REQUEST_PIXELS = 2 * MAX_IMAGE_PIXELS
WORKING_SIDE = 1024  # larger images are reduced to this before preprocessing: a digit needs no more


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


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
