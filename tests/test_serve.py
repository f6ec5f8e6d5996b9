"""Export and serving: ONNX against PyTorch on the whole test set, the HTTP API over real sockets, and the drawing
page in a real browser, drawn on stroke by stroke from MNIST test images."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from browser import draw_digit, launch
from conftest import run_cli

onnx = pytest.importorskip("onnx")
Image = pytest.importorskip("PIL.Image")


def post(url: str, body: bytes, content_type: str | None, path: str = "/predict") -> tuple[int, dict]:
    headers = {"Content-Type": content_type} if content_type else {}
    request = urllib.request.Request(f"{url}{path}", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def png(image: np.ndarray, scale: int = 10, invert: bool = True, mode: str = "L", fmt: str = "PNG") -> bytes:
    big = np.kron(image, np.ones((scale, scale), dtype=np.uint8))
    picture = Image.fromarray(255 - big if invert else big).convert(mode)
    buf = io.BytesIO()
    picture.save(buf, fmt)
    return buf.getvalue()


@pytest.mark.slow
def test_export_matches_torch_on_the_whole_test_set(served_run, tmp_path):
    out = tmp_path / "model.onnx"
    r = run_cli("export", str(served_run), "--format", "onnx", "--out", str(out))
    assert r.returncode == 0, r.stderr
    onnx.checker.check_model(onnx.load(out))
    assert "10,000 mnist test images" in r.stdout
    diff = float(r.stdout.split("largest probability difference ")[1].split(",")[0])
    assert diff < 1e-4
    model = onnx.load(out)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch dimension


def test_export_int8_quantises_and_predicts(served_run, tmp_path, mnist_test):
    """--int8 writes a quantised graph (int8 weights, QuantizeLinear steps) that reports both accuracies, agrees
    with PyTorch on nearly every digit, and runs wherever an .onnx file does."""
    out = tmp_path / "model.int8.onnx"
    r = run_cli("export", str(served_run), "--int8", "--out", str(out))
    assert r.returncode == 0 and ", int8)" in r.stdout, r.stderr
    graph = onnx.load(out).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in graph.node}
    assert any(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)
    same = float(r.stdout.split("same prediction for ")[1].split("%")[0])
    int8, fp32 = (float(x.split("%")[0]) for x in r.stdout.split("ONNX Runtime ")[2].split(", PyTorch "))
    assert same >= 98.0 and abs(int8 - fp32) <= 0.5, r.stdout
    np.savez(tmp_path / "x.npz", images=mnist_test[0][:200])
    r = run_cli("predict", str(out), "--input", str(tmp_path / "x.npz"), "--out", str(tmp_path / "p.csv"))
    assert r.returncode == 0 and len((tmp_path / "p.csv").read_text().splitlines()) == 201, r.stderr
    r = run_cli("export", str(served_run), "--int8", "--format", "web", "--out", str(tmp_path / "web"))
    assert r.returncode != 0 and "--format onnx" in r.stderr and "Traceback" not in r.stderr


def test_predict_engines_agree(served_run, tmp_path, mnist_test):
    np.savez(tmp_path / "x.npz", images=mnist_test[0][:500])
    outputs = {}
    for engine in ("torch", "onnx"):
        out = tmp_path / f"{engine}.csv"
        r = run_cli(
            "predict", str(served_run), "--input", str(tmp_path / "x.npz"), "--out", str(out), "--engine", engine
        )
        assert r.returncode == 0 and f"({engine})" in r.stdout, r.stderr
        outputs[engine] = out.read_text()
    assert outputs["torch"] == outputs["onnx"]


def test_api_answers_json_png_jpeg_multipart_and_batches(server, mnist_test):
    images, labels = mnist_test
    status, answer = post(server, json.dumps({"pixels": images[0].ravel().tolist()}).encode(), "application/json")
    assert status == 200 and answer["digit"] == labels[0] and len(answer["probabilities"]) == 10
    assert abs(sum(answer["probabilities"]) - 1) < 1e-4 and answer["model"]["engine"] in ("onnx", "torch")
    status, answer = post(server, json.dumps({"pixels": images[:8].tolist()}).encode(), "application/json")
    assert status == 200 and [p["digit"] for p in answer["predictions"]] == labels[:8].tolist()
    for fmt, mode, ctype in (("PNG", "L", "image/png"), ("PNG", "RGBA", "image/png"), ("JPEG", "RGB", "image/jpeg")):
        status, answer = post(server, png(images[0], mode=mode, fmt=fmt), ctype)
        assert status == 200 and answer["digit"] == labels[0], (fmt, mode, answer)
    boundary = "digitlabboundary"
    parts = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d{i}.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + png(images[i], invert=False)
        + b"\r\n"
        for i in range(3)
    )
    status, answer = post(server, parts + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}")
    assert status == 200 and [p["digit"] for p in answer["predictions"]] == labels[:3].tolist()
    health = json.load(urllib.request.urlopen(f"{server}/health"))
    assert health["status"] == "ok"
    schema = json.load(urllib.request.urlopen(f"{server}/openapi.json"))
    assert "/predict" in schema["paths"]


MALFORMED = [
    (b"", "application/json", 400),
    (b"{", "application/json", 400),
    (b"[1, 2, 3]", "application/json", 422),
    (b'{"pixels": []}', "application/json", 422),
    (b'{"pixels": "abc"}', "application/json", 422),
    (json.dumps({"pixels": [300] * 784}).encode(), "application/json", 422),
    (json.dumps({"pixels": [-1] * 784}).encode(), "application/json", 422),
    (json.dumps({"pixels": [0] * 783}).encode(), "application/json", 422),
    (json.dumps({"pixel": [0] * 784}).encode(), "application/json", 422),
    (json.dumps({"pixels": [[0] * 784, [0] * 10]}).encode(), "application/json", 422),
    (b'{"pixels": [NaN]}', "application/json", 422),
    (b"hello", "text/plain", 415),
    (b"hello", None, 415),
    (b"\x89PNG\r\n\x1a\nbroken", "image/png", 400),
    (b"not a jpeg", "image/jpeg", 400),
    (b"", "image/png", 400),
    (
        b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nhello\r\n--x--\r\n',
        "multipart/form-data; boundary=x",
        422,
    ),  # a form without a file
    (b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x", 400),
    (b"junk", "multipart/form-data", 400),
    (b"x" * (5 * 1024 * 1024), "image/png", 413),
]


@pytest.mark.parametrize("body, content_type, status", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_requests_get_a_json_4xx(server, body, content_type, status):
    got, answer = post(server, body, content_type)
    assert got == status and "error" in answer, (got, answer)


def test_explain_answers_integrated_gradients_for_one_picture(server, mnist_test):
    """/explain (the page's "Why?"): the digit, the 28x28 input the model saw and a 28x28 saliency map whose largest
    is Integrated Gradients from a black image: zero where there is no ink, and summing to the rise of the digit's
    logit over black's (positive); /health says saliency is available for a run folder."""
    images, labels = mnist_test
    with urllib.request.urlopen(f"{server}/health", timeout=30) as response:
        assert json.load(response)["explain"] is True
    status, answer = post(server, png(images[0]), "image/png", path="/explain")
    assert status == 200 and answer["digit"] == labels[0], answer
    seen, saliency = np.array(answer["input"]), np.array(answer["saliency"])
    assert seen.shape == saliency.shape == (28, 28) and seen.max() == 255
    assert np.all(saliency[seen == 0] == 0) and np.abs(saliency[seen > 0]).sum() > 0
    assert saliency.sum() > 0
    json_body = json.dumps({"pixels": images[:2].tolist()}).encode()
    assert post(server, json_body, "application/json", path="/explain")[0] == 422  # one image only


def test_blank_and_gif_images_are_refused(server):
    assert post(server, png(np.zeros((28, 28), dtype=np.uint8)), "image/png")[0] == 422  # white paper, no ink
    assert post(server, png(np.zeros((28, 28), dtype=np.uint8), fmt="GIF"), "image/png")[0] == 415


@pytest.mark.slow
def test_drawing_page_predicts_mnist_digits_drawn_stroke_by_stroke(server, mnist_test):
    """Draw real MNIST test images onto the canvas as mouse strokes (one per run of ink in each pixel row) and read
    the page's answer; the page has no external resources (the machine is offline)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    images, labels = mnist_test
    picks = [int(np.flatnonzero(labels == digit)[0]) for digit in (7, 2, 1, 0, 4)]
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page()
            external = []
            page.on("request", lambda r: None if r.url.startswith(server) else external.append(r.url))
            page.goto(server + "/")
            right = 0
            for index in picks:
                draw_digit(page, images[index])
                page.wait_for_timeout(400)
                page.wait_for_function("() => document.getElementById('digit').dataset.digit !== ''")
                shown = page.locator("#digit").inner_text()
                bars = [float(page.locator(f"#bar-{d}").get_attribute("data-prob")) for d in range(10)]
                assert abs(sum(bars) - 1) < 1e-3 and int(np.argmax(bars)) == int(shown)
                right += int(shown) == labels[index]
            page.click("#why")  # the last digit: Integrated Gradients from the server, drawn over the input
            page.wait_for_function("() => document.getElementById('whyView').style.display === 'block'")
            assert page.locator("#whyView").get_attribute("data-digit") == shown
        finally:
            browser.close()
    assert external == []
    assert right >= 4, f"{right} of {len(picks)} drawn digits recognised"
