"""Headless Chromium for tests: Debian's /usr/bin/chromium driven by Playwright (no browser download)."""

from __future__ import annotations

import shutil

import pytest

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
    return path


def launch(playwright):
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)


def check_report_in_browser(path, section_ids: list[str]) -> dict:
    """Open a report file in headless Chromium: every section present, every image decoded; returns counts."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])")
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page()
            page.goto(path.resolve().as_uri())
            page.wait_for_load_state("load")
            found = page.evaluate("ids => ids.filter(id => document.getElementById(id) !== null)", section_ids)
            images = page.evaluate("""() => Array.from(document.images).map(
                img => ({complete: img.complete, width: img.naturalWidth, height: img.naturalHeight}))""")
            external = page.evaluate("""() => Array.from(document.querySelectorAll('[src],[href]'))
                .map(e => e.getAttribute('src') || e.getAttribute('href')).filter(u => !u.startsWith('data:'))""")
        finally:
            browser.close()
    assert found == section_ids, f"missing sections: {set(section_ids) - set(found)}"
    assert images and all(i["complete"] and i["width"] > 0 and i["height"] > 0 for i in images), images
    assert external == [], f"report is not self-contained: {external}"
    return {"images": len(images)}


def draw_digit(page, image) -> None:
    """Draw a 28x28 image (light ink on black) onto the page's #pad as mouse strokes, one per run of ink in each
    pixel row, after clearing it: the way a user's pointer would."""
    import numpy as np

    box = page.locator("#pad").bounding_box()
    page.click("#clear")
    for row in range(28):
        ink = np.flatnonzero(image[row] > 100)
        runs = np.split(ink, np.flatnonzero(np.diff(ink) > 1) + 1) if len(ink) else []
        for run in runs:
            y = box["y"] + (row + 0.5) * box["height"] / 28
            page.mouse.move(box["x"] + (run[0] + 0.5) * box["width"] / 28, y)
            page.mouse.down()
            page.mouse.move(box["x"] + (run[-1] + 0.5) * box["width"] / 28, y, steps=2)
            page.mouse.up()
