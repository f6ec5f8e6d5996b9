"""The static web export and the one preprocessing specification: the page runs the model in headless Chromium from
file://, and the browser's preprocessing gives the same 28x28 input as the server's for the same picture."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess

import numpy as np
import pytest
from browser import draw_digit, launch
from conftest import run_cli
from PIL import Image, ImageDraw, ImageFilter

from digitlab.errors import DataError, DigitlabError
from digitlab.preprocess import NoInk, mnist_style
from digitlab.web import MANIFEST, export_web

PREPROCESS_JS = "digitlab/static/preprocess.js"


def random_pictures(count: int, seed: int = 0) -> list[Image.Image]:
    """Strokes of random width and colour on paper of random shade, some blurred, some light-on-dark, some lit
    unevenly."""
    rng = np.random.default_rng(seed)
    pictures = []
    for i in range(count):
        width, height = (int(v) for v in rng.integers(40, 300, 2))
        paper = tuple(int(v) for v in rng.integers(150, 256, 3)) if i % 3 else (255, 255, 255)
        picture = Image.new("RGB", (width, height), paper)
        points = [(int(rng.integers(0, width)), int(rng.integers(0, height))) for _ in range(int(rng.integers(2, 6)))]
        ink = tuple(int(v) for v in rng.integers(0, 90, 3))
        ImageDraw.Draw(picture).line(points, fill=ink, width=int(rng.integers(1, 25)), joint="curve")
        if i % 2:
            picture = picture.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 3))))
        if i % 5 == 0:
            picture = Image.fromarray(255 - np.asarray(picture))
        if i % 4 == 1:  # lit from one side: the paper darkens across the picture
            ys, xs = np.mgrid[0:height, 0:width]
            light = 0.45 + 0.55 * (0.6 * xs / width + 0.4 * ys / height)
            picture = Image.fromarray((np.asarray(picture) * light[..., None]).astype(np.uint8))
        pictures.append(picture)
    return pictures


def test_preprocessing_in_javascript_gives_the_same_pixels_as_python(tmp_path):
    """preprocess.js (run by Node) and preprocess.py on 60 varied pictures: the same 28x28 input, pixel for pixel."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    pictures = random_pictures(60)
    cases = [{"w": p.width, "h": p.height, "rgba": np.asarray(p.convert("RGBA")).ravel().tolist()} for p in pictures]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    script = f"""
        const fs = require("fs");
        eval(fs.readFileSync({json.dumps(PREPROCESS_JS)}, "utf8").replace('"use strict";', ""));
        const cases = JSON.parse(fs.readFileSync({json.dumps(str(tmp_path / "cases.json"))}));
        console.log(JSON.stringify(cases.map(c =>
            Array.from(digitlabPreprocess(Uint8ClampedArray.from(c.rgba), c.w, c.h)))));"""
    out = subprocess.run([node, "-e", script], capture_output=True, text=True, check=True, timeout=120).stdout
    for picture, js in zip(pictures, json.loads(out)):
        python = mnist_style(picture)
        assert python.shape == (28, 28) and python.max() == 255
        np.testing.assert_array_equal(python.ravel(), np.array(js))


def test_preprocessing_refuses_a_picture_without_ink():
    with pytest.raises(NoInk):
        mnist_style(Image.new("RGB", (50, 50), (240, 240, 240)))


def test_web_export_refuses_what_it_must_not_replace(trained_run, tmp_path):
    with pytest.raises(DigitlabError, match="needs --out"):
        export_web(trained_run, None)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "mine.html").write_text("keep me")
    with pytest.raises(DigitlabError, match="not an earlier web export"):
        export_web(trained_run, tmp_path / "site", force=True)
    assert (tmp_path / "site" / "mine.html").read_text() == "keep me"
    bogus = tmp_path / "onnxruntime-web-1.30.0.tgz"
    bogus.write_bytes(b"not the package")
    with pytest.raises(DataError, match="SHA-512"):
        export_web(trained_run, tmp_path / "web", ort_package=bogus)
    assert not (tmp_path / "web").exists() and {p.name for p in tmp_path.iterdir()} == {"site", bogus.name}


@pytest.mark.slow
def test_web_export_runs_offline_in_chromium_from_file(trained_run, mnist_test, tmp_path):
    """`digitlab export --format web`, then the page opened from disk: real test digits drawn stroke by stroke are
    read by onnxruntime-web in the page; the page's input equals the server's preprocessing of the same drawing, its
    probabilities equal ONNX Runtime's in Python; nothing is fetched from the network."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from digitlab.export import onnx_session, run_onnx
    from digitlab.uploads import decode_image

    out = tmp_path / "web"
    r = run_cli("export", str(trained_run), "--format", "web", "--out", str(out))
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / MANIFEST).read_text())
    assert set(manifest["files"]) >= {"index.html", "model.js", "ort-runtime.js", "ort.wasm.min.js", "preprocess.js"}
    session = onnx_session(out / "model.onnx")
    images, labels = mnist_test
    picks = [int(np.flatnonzero(labels == digit)[0]) for digit in (3, 5, 6, 8, 9)]
    right = 0
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page()
            fetched = []
            page.on("request", lambda request: fetched.append(request.url))
            page.goto((out / "index.html").as_uri())
            for index in picks:
                before = page.evaluate("() => requests")
                draw_digit(page, images[index])  # then wait for the last stroke's answer
                page.wait_for_function(f"() => requests > {before} && !inFlight && !dirty", timeout=60_000)
                drawing = base64.b64decode(page.evaluate("() => pad.toDataURL('image/png')").split(",")[1])
                seen = np.array(page.evaluate("() => window.digitlabInput"), dtype=np.uint8).reshape(28, 28)
                np.testing.assert_array_equal(seen, decode_image(drawing))
                shown = int(page.locator("#digit").inner_text())
                bars = np.array([float(page.locator(f"#bar-{d}").get_attribute("data-prob")) for d in range(10)])
                expected = run_onnx(session, seen[None, None].astype(np.float32))[0]
                assert np.abs(bars - expected).max() < 1e-4 and shown == int(expected.argmax())
                right += shown == labels[index]
            status = page.locator("#status").inner_text()
        finally:
            browser.close()
    assert status == ""
    assert all(url.startswith(("file://", "blob:", "data:")) for url in fetched), fetched
    assert right >= 4, f"{right} of {len(picks)} drawn digits recognised"
    assert Image.open(io.BytesIO(drawing)).size == (280, 280)
