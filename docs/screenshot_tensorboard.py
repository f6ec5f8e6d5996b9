"""Regenerate docs/tools/tensorboard.png: TensorBoard's own UI over a lab trained with `--log tensorboard`.

    digitlab lab --strategies none,all --epochs 12 --train-size 2000 --val-size 1000 --log tensorboard --out LAB
    python docs/screenshot_tensorboard.py LAB

Starts `tensorboard --logdir LAB` on 127.0.0.1, opens its scalars dashboard in headless Chromium (Debian's), waits
shows the loss and validation-accuracy charts and saves the screenshot.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(logdir: str, out: str = "docs/tools/tensorboard.png") -> None:
    port = free_port()
    tensorboard = Path(sys.executable).parent / "tensorboard"
    server = subprocess.Popen([str(tensorboard), "--logdir", logdir, "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}/?darkMode=false#timeseries"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url)
            page.wait_for_selector("canvas, svg.line-chart, vz-line-chart2", timeout=60_000)
            page.fill("input[placeholder='Filter tags (regex)']", "loss|accuracy/val")  # the overfitting story
            page.keyboard.press("Enter")
            page.wait_for_timeout(6000)  # the charts fetch their series and draw
            page.screenshot(path=out)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
