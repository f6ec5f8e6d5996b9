"""Load test of `digitlab serve` on 127.0.0.1 only, bounded in count and time, and a malformed-request run.

Starts the server as a subprocess (engine: auto, i.e. ONNX Runtime when installed), then:
  * single-image requests (JSON pixels of MNIST test images) from 1, 16 and 64 concurrent clients, each client a
    thread with its own keep-alive connection; at most REQUESTS requests or SECONDS seconds per level; throughput,
    p50/p99 latency and the error count;
  * 60 kinds of malformed request, each of which must get a 4xx with a JSON error, then /health must still answer.
Prints a table and one JSON object (also benchmarks/out/bench_serve.json). The client threads share the 2 cores with
the server, so the figures are a floor for what the server does alone.

    python benchmarks/bench_serve.py RUN_DIR
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
from common import machine, write_result
from PIL import Image

from digitlab.datasets import load_split

REQUESTS, SECONDS = 3000, 20.0


def png(array: np.ndarray, fmt: str = "PNG", mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buf, fmt)
    return buf.getvalue()


def request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None, ctype: str | None):
    headers = {"Content-Type": ctype} if ctype else {}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def load_level(port: int, clients: int, bodies: list[bytes]) -> dict:
    latencies, errors, lock = [], [0], threading.Lock()
    deadline = time.perf_counter() + SECONDS
    counter = iter(range(REQUESTS))

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in counter:
            if time.perf_counter() > deadline:
                break
            start = time.perf_counter()
            try:
                status, _ = request(conn, "POST", "/predict", bodies[i % len(bodies)], "application/json")
            except (OSError, http.client.HTTPException):
                status = 0
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            with lock:
                latencies.append(time.perf_counter() - start)
                errors[0] += status != 200
        conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = sorted(1000 * x for x in latencies)
    return {
        "clients": clients,
        "requests": len(ms),
        "errors": errors[0],
        "requests_per_s": len(ms) / wall,
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))],
    }


def malformed_requests(image: np.ndarray) -> list[tuple[str, str, bytes | None, str | None]]:
    """(method, path, body, content type): 60 kinds of bad request."""
    j = "application/json"
    zeros = [0] * 784
    bad_json = [
        b"",
        b"{",
        b"[",
        b"null",
        b"true",
        b"1",
        b'"text"',
        b"[]",
        b"{}",
        b'{"pixels": []}',
        b'{"pixels": null}',
        b'{"pixels": "x"}',
        b'{"pixels": {}}',
        b'{"pixels": [NaN]}',
        b'{"pixels": [Infinity]}',
        b"\xff\xfe",
        b'{"pixels": [1, 2, "3"]}',
        b'{"pixels": [[1, 2], [3]]}',
    ]
    bad_json += [
        json.dumps(x).encode()
        for x in (
            {"pixels": [0] * 783},
            {"pixels": [0] * 785},
            {"pixels": [256] * 784},
            {"pixels": [-1] * 784},
            {"pixels": [1e9] * 784},
            {"pixels": [[0] * 27] * 28},
            {"pixels": [[[0] * 28] * 28] * 2 + [[[0] * 27] * 28]},
            {"pixels": zeros, "extra": 1},
            {"pixel": zeros},
            {"pixels": [zeros, zeros[:-1]]},
            zeros[:100],
            {"pixels": [None] * 784},
            {"pixels": [[0] * 784] * 1025},
        )
    ]
    blank = np.full((28, 28), 255, dtype=np.uint8)
    good_png = png(255 - image)
    images = [
        (good_png[:40], "image/png"),
        (good_png[: len(good_png) // 2], "image/png"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (bytes(range(256)), "image/png"),
        (b"\xff\xd8\xff\xe0garbage", "image/jpeg"),
        (png(255 - image, "GIF"), "image/png"),
        (png(255 - image, "BMP"), "image/png"),
        (png(blank), "image/png"),
        (png(np.zeros((28, 28), np.uint8)), "image/png"),
        (png(np.zeros((12000, 12000), np.uint8), mode="1"), "image/png"),
        (b"", "image/png"),
        (b"x" * (5 * 1024 * 1024), "image/png"),
        (good_png, "image/gif"),
        (good_png, "text/plain"),
    ]
    multipart = [
        (b"junk", "multipart/form-data"),
        (b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x"),
        (b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nhi\r\n--x--\r\n', "multipart/form-data; boundary=x"),
        (
            b'--x\r\nContent-Disposition: form-data; name="f"; filename="a.png"\r\n\r\nnotpng\r\n--x--\r\n',
            "multipart/form-data; boundary=x",
        ),
    ]
    cases = [("POST", "/predict", body, j) for body in bad_json]
    cases += [("POST", "/predict", body, ctype) for body, ctype in images + multipart]
    cases += [
        ("POST", "/predict", b"abc", None),
        ("POST", "/predict", b"<x/>", "application/xml"),
        ("POST", "/predict", good_png, "application/octet-stream"),
        ("GET", "/predict", None, None),
        ("PUT", "/predict", good_png, "image/png"),
        ("DELETE", "/predict", None, None),
        ("POST", "/nowhere", good_png, "image/png"),
        ("GET", "/static/../../etc/passwd", None, None),
        ("POST", "/predict", b'{"pixels": ' + b"[" * 100_000, j),
        ("POST", "/health", None, None),
        ("PATCH", "/predict", b"{}", j),
    ]
    return cases


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(run: str) -> None:
    images = load_split("mnist", "test")[0]
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "digitlab.cli", "serve", run, "--port", str(port)])
    try:
        for _ in range(300):
            try:
                request(http.client.HTTPConnection("127.0.0.1", port, timeout=2), "GET", "/health", None, None)
                break
            except OSError:
                time.sleep(0.2)
        bodies = [json.dumps({"pixels": images[i].ravel().tolist()}).encode() for i in range(200)]
        levels = [load_level(port, clients, bodies) for clients in (1, 16, 64)]
        outcomes = []
        for method, path, body, ctype in malformed_requests(images[0]):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                status, payload = request(conn, method, path, body, ctype)
                is_json_error = "error" in json.loads(payload) if payload else False
            except (OSError, http.client.HTTPException, ValueError) as e:
                status, is_json_error = f"failed: {e}", False
            outcomes.append(
                {
                    "request": f"{method} {path} {ctype} {(body or b'')[:24]!r}",
                    "status": status,
                    "json_error": is_json_error,
                }
            )
        health, _ = request(http.client.HTTPConnection("127.0.0.1", port, timeout=5), "GET", "/health", None, None)
    finally:
        server.terminate()
        server.wait(timeout=10)
    four_xx = sum(isinstance(o["status"], int) and 400 <= o["status"] < 500 and o["json_error"] for o in outcomes)
    result = {
        "machine": machine(),
        "levels": levels,
        "malformed_kinds": len(outcomes),
        "malformed_4xx_json": four_xx,
        "health_after": health,
        "malformed": outcomes,
    }
    write_result("bench_serve", result)
    print(f"{'clients':>8} {'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for level in levels:
        print(
            f"{level['clients']:>8} {level['requests']:>9} {level['errors']:>7} {level['requests_per_s']:>8.0f} "
            f"{level['p50_ms']:>8.1f} {level['p99_ms']:>8.1f}"
        )
    print(
        f"malformed requests: {four_xx} of {len(outcomes)} kinds got a 4xx with a JSON error; "
        f"/health afterwards: {health}"
    )
    for o in outcomes:
        if not (isinstance(o["status"], int) and 400 <= o["status"] < 500 and o["json_error"]):
            print(f"  NOT 4xx+JSON: {o}")
    print(json.dumps({k: v for k, v in result.items() if k != "malformed"}))


if __name__ == "__main__":
    main(sys.argv[1])
