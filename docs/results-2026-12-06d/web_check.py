"""The drawing page with an ink-width model: `digitlab export --format web` of one member, opened from disk in
headless Chromium; five MNIST test digits drawn stroke by stroke; the page's probabilities (onnxruntime-web, which
must run the GridSample node) against ONNX Runtime's in Python for the same 28x28 input. Run from the repository
root, after the ensemble of PLAN.md's step 1:

    python docs/results-2026-12-06d/web_check.py benchmarks/out/deep32k5-ink-final/member-0 /tmp/ink-web
"""

import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from browser import draw_digit, launch  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from digitlab.data import load_source  # noqa: E402
from digitlab.export import onnx_session, run_onnx  # noqa: E402

run, out = sys.argv[1], Path(sys.argv[2])
subprocess.run(["digitlab", "export", run, "--format", "web", "--out", str(out), "--force"], check=True)
session = onnx_session(out / "model.onnx")
test = load_source("mnist", "test")
images, labels = test.images.numpy().reshape(-1, 28, 28), test.labels.numpy()
with sync_playwright() as p:
    browser = launch(p)
    page = browser.new_page()
    page.goto((out / "index.html").as_uri())
    for digit in (3, 5, 6, 8, 9):
        index = int(np.flatnonzero(labels == digit)[0])
        before = page.evaluate("() => requests")
        draw_digit(page, images[index])
        page.wait_for_function(f"() => requests > {before} && !inFlight && !dirty", timeout=60_000)
        seen = np.array(page.evaluate("() => window.digitlabInput"), dtype=np.float32).reshape(1, 1, 28, 28)
        bars = np.array([float(page.locator(f"#bar-{d}").get_attribute("data-prob")) for d in range(10)])
        expected = run_onnx(session, seen)[0]
        shown = page.locator("#digit").inner_text()
        print(f"test image {index} (a {digit}): page reads {shown}, Python ONNX Runtime {expected.argmax()}, "
              f"largest probability difference {np.abs(bars - expected).max():.1e}")  # fmt: skip
    print(f"page status: {page.locator('#status').inner_text()!r}")
    browser.close()
