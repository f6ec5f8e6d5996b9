"""The server under hostile or careless clients, over real HTTP on 127.0.0.1: oversized images refused from their
header while /health stays quick, stalled heads and bodies dropped, SIGTERM honoured with a stalled client
connected, other sites' pages and foreign Host names refused, no absolute path disclosed, and the API fuzzed from
its own OpenAPI schema with schemathesis."""

from __future__ import annotations

import io
import json
import signal
import socket
import threading
import time
import urllib.request

import pytest
from conftest import run_cli, start_server
from hypothesis import HealthCheck, given, settings
from test_serve import post

Image = pytest.importorskip("PIL.Image")
schemathesis = pytest.importorskip("schemathesis")


def huge_png(side: int = 7000) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (side, side), 255).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def raw_request(url: str, head: bytes, body: bytes = b"", timeout: float = 60) -> tuple[bytes, float]:
    """Send `head` + `body` on a raw socket and read until the server closes; (answer, seconds until closed)."""
    host, port = url.removeprefix("http://").split(":")
    start = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer, time.perf_counter() - start


def health_seconds(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
        assert response.status == 200
    return time.perf_counter() - start


def test_a_huge_image_is_refused_from_its_header_while_health_stays_quick(server):
    png = huge_png()
    assert len(png) < 200_000  # a small file: the danger is in its 49 Mpx, not its bytes
    boundary = "b"
    body = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big{i}.png"\r\n'
            f"Content-Type: image/png\r\n\r\n".encode()
            + png
            + b"\r\n"
            for i in range(4)
        )
        + f"--{boundary}--\r\n".encode()
    )
    results = {}
    posting = threading.Thread(
        target=lambda: results.update(multi=post(server, body, f"multipart/form-data; boundary={boundary}"))
    )
    posting.start()
    health = [health_seconds(server) for _ in range(5)]
    posting.join(timeout=30)
    status, answer = post(server, png, "image/png")
    assert status == 413 and "7000 x 7000" in answer["error"], answer
    assert results["multi"][0] == 413 and "error" in results["multi"][1]
    assert max(health) < 1.0, health


def test_too_many_files_and_pixels_per_request_are_refused(server):
    small = io.BytesIO()
    Image.new("L", (40, 40), 0).save(small, format="PNG")
    boundary = "b"
    body = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d{i}.png"\r\n\r\n'.encode()
            + small.getvalue()
            + b"\r\n"
            for i in range(17)
        )
        + f"--{boundary}--\r\n".encode()
    )
    status, answer = post(server, body, f"multipart/form-data; boundary={boundary}")
    assert status == 413 and "16 files" in answer["error"]


def test_overflowing_json_numbers_are_a_json_422(server):
    status, answer = post(server, b'{"pixels": [' + b"9" * 400 + b"]}", "application/json")
    assert status == 422 and "error" in answer


def test_identity_has_no_absolute_path_or_commit(server):
    health = json.load(urllib.request.urlopen(f"{server}/health"))
    text = json.dumps(health)
    assert "/tmp" not in text and "git_commit" not in text and health["model"]["model"] == "run/model.onnx"


def test_other_sites_and_foreign_hosts_are_refused(server):
    pixels = json.dumps({"pixels": [0] * 784}).encode()
    port = server.rsplit(":", 1)[1]
    for headers, status in (
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Host": f"evil.example:{port}"}, 421),
        ({"Origin": server, "Sec-Fetch-Site": "same-origin"}, 200),
    ):
        request = urllib.request.Request(f"{server}/predict", data=pixels, method="POST",
                                         headers={"Content-Type": "text/plain", **headers})  # fmt: skip
        request.add_header("Content-Type", "application/json" if status == 200 else "text/plain")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                got = response.status
        except urllib.error.HTTPError as e:
            got = e.code
            assert "error" in json.load(e)
        assert got == status, headers
    rebinding = urllib.request.Request(f"{server}/health", headers={"Host": "attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(rebinding, timeout=10)
    assert refused.value.code == 421


@pytest.mark.slow
def test_stalled_heads_and_bodies_are_dropped_and_sigterm_still_stops_the_server(served_run):
    """With the deadlines set short (--header-timeout 2 --body-timeout 3; the defaults, 10 and 15 s, are the
    flags' and ServeConfig's): each stalled client is dropped at its own deadline, neither early nor late."""
    process, url = start_server(served_run, "--header-timeout", "2", "--body-timeout", "3")
    try:
        results = {}
        stalled_body = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n" \
            b"Content-Length: 1000000\r\n\r\n"  # fmt: skip
        threads = [
            threading.Thread(target=lambda: results.update(body=raw_request(url, stalled_body, b"x" * 1024))),
            threading.Thread(target=lambda: results.update(head=raw_request(url, b"POST /predict HTTP/1.1\r\nHo"))),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=45)
        answer, seconds = results["body"]
        assert b" 408 " in answer.split(b"\r\n")[0] and b"within 3 s" in answer, answer[:300]
        assert 2.9 < seconds < 10, seconds
        assert 1.9 < results["head"][1] < 10, results["head"][1]
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as sock:  # a client that stalls
            sock.sendall(stalled_body)
            time.sleep(0.5)
            start = time.perf_counter()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
            assert time.perf_counter() - start < 10
    finally:
        if process.poll() is None:
            process.kill()


FUZZ_EXAMPLES = 60  # per operation and generation mode


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_api_fuzzed_from_its_openapi_schema_never_errs(server, mode):
    """schemathesis generates requests for every operation of the served OpenAPI schema — valid ones (positive)
    and schema-breaking ones (negative), for each media type /predict accepts — and every answer must be JSON (the
    page excepted) with a status below 500. (Its pytest plugin is not used: it does not support pytest 9.)"""
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {"GET /health", "POST /predict"}
    if mode == "negative":  # an operation without parameters or body (GET /health) has no schema to break
        operations = [op for op in operations if op.method.upper() == "POST"]
    answered = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode)))
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call(base_url=server, timeout=30)
            assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
            assert response.headers.get("content-type", [""])[0].startswith("application/json")
            answered.append(response.status_code)

        check()
    assert len(answered) >= len(operations) * 10  # schemathesis did generate and send requests


@pytest.mark.parametrize(
    "flag, value", [("--body-timeout", "0"), ("--header-timeout", "nan"), ("--body-timeout", "4000")]
)
def test_a_timeout_outside_its_range_is_one_clear_error(served_run, flag, value):
    r = run_cli("serve", str(served_run), flag, value)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "timeout" in r.stderr and "(0, 3600]" in r.stderr


def test_a_busy_port_or_an_address_not_here_is_one_clear_error(served_run):
    """Bound before the model loads or anything is announced: exit 2 and one line saying why, not uvicorn's log
    after a "serving on" line (a busy port), nor a traceback (a port out of range)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        cases = [
            (["--port", port], f"cannot serve on 127.0.0.1:{port}", "another program is listening there"),
            (["--port", "70000"], "port 70000 must be in [0, 65535]", ""),
            (["--port", "-1"], "port -1 must be in [0, 65535]", ""),
            (["--host", "192.0.2.1"], "cannot serve on 192.0.2.1:8000", "address"),  # TEST-NET-1: nobody's here
        ]
        for flags, reason, detail in cases:
            r = run_cli("serve", str(served_run), *flags)
            assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (flags, r.stderr)
            assert reason in r.stderr and detail in r.stderr and "serving" not in r.stdout, (flags, r.stderr)
