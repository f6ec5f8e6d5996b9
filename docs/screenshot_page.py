"""Regenerate docs/draw.png: serve a run, draw an MNIST test digit on the page in headless Chromium, screenshot.

python docs/screenshot_page.py RUN_DIR
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from playwright.sync_api import sync_playwright

from digitlab.datasets import load_split

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main(run: str, index: int = 0) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "digitlab.cli", "serve", run, "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        image = load_split("mnist", "test")[0][index]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 760, "height": 520})
            page.goto(url + "/")
            box = page.locator("#pad").bounding_box()
            for row in range(28):
                ink = np.flatnonzero(image[row] > 100)
                for run_ in np.split(ink, np.flatnonzero(np.diff(ink) > 1) + 1) if len(ink) else []:
                    y = box["y"] + (row + 0.5) * box["height"] / 28
                    page.mouse.move(box["x"] + (run_[0] + 0.5) * box["width"] / 28, y)
                    page.mouse.down()
                    page.mouse.move(box["x"] + (run_[-1] + 0.5) * box["width"] / 28, y, steps=2)
                    page.mouse.up()
            page.wait_for_timeout(800)
            page.screenshot(path=str(Path(__file__).parent / "draw.png"))
            browser.close()
    finally:
        server.terminate()


if __name__ == "__main__":
    main(sys.argv[1])
