"""The one preprocessing specification for real-world pictures of a digit: how a photo or drawing becomes MNIST-style.

MNIST's digits were size-normalised to fit a 20x20 box keeping their aspect ratio (anti-aliased), then centred by
their centre of mass in a 28x28 field (LeCun, Cortes and Burges, the MNIST database page). `mnist_style` does the
same to any picture, in these steps (the server, the static web page and the robustness suite all use them):

1. grayscale with ITU-R 601 luma (PIL's "L"); transparent pixels count as white paper;
2. if the border is light on average (dark ink on paper), invert, since MNIST is light ink on black;
3. subtract the paper's shade, a plane through the medians of the four edges (so that a picture lit from one side
   keeps only its ink), and clip to 0..255;
4. ink = pixels above 20 % of the brightest; no ink, or nothing brighter than 32, is refused (`NoInk`);
5. crop to the ink's bounding box, truncate to uint8, resize with Lanczos (a = 3, Pillow's fixed-point resampler;
   the width pass, then the height pass) so the longer side is 20 pixels (sizes rounded half to even), and stretch
   the result so its brightest pixel is 255;
6. paste it centred in a black 28x28 field, then shift by whole pixels (rounded half to even) so the centre of
   mass lies at (13.5, 13.5); the result is rounded half to even to uint8.

`static/preprocess.js` is the same specification written for the browser, step by step; tests/test_web.py draws
digits in headless Chromium and checks that both give the same 28x28 input for the same drawing.
"""

from __future__ import annotations

import numpy as np

INK_FRACTION = 0.2  # of the brightest pixel: what counts as ink when cropping
MIN_INK = 32  # gray levels: a picture whose brightest ink is fainter than this has no digit on it
BOX = 20  # pixels: the longer side of the digit, as in MNIST
SIDE = 28


class NoInk(ValueError):
    """The picture has no visible ink."""


def grayscale(image) -> np.ndarray:
    """A PIL image -> float32 (H, W) gray levels, transparent areas composited onto white paper."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("L"), dtype=np.float32)


def ink_on_black(gray: np.ndarray) -> np.ndarray:
    """Steps 2-3: light ink on a 0 background."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.mean() > 127:  # dark ink on light paper
        gray = 255 - gray
    return np.clip(gray - paper_plane(gray), 0, 255)


def paper_plane(gray: np.ndarray) -> np.ndarray:
    """The paper's shade as a plane a + b x + c y, from the medians of the four edges (each robust to ink touching
    it): a photo lit from one side has paper that darkens across the picture, and one shade for all of it leaves
    the dark side as "ink" (measured: 80 % of such digits read right, against 99 % of evenly lit ones)."""
    height, width = gray.shape
    top, bottom = np.median(gray[0]), np.median(gray[-1])
    left, right = np.median(gray[:, 0]), np.median(gray[:, -1])
    xs = np.arange(width, dtype=np.float64) / max(width - 1, 1)
    ys = np.arange(height, dtype=np.float64) / max(height - 1, 1)
    across = left + (right - left) * xs  # (W,)
    down = top + (bottom - top) * ys  # (H,)
    return (down[:, None] + across[None, :]) - (top + bottom + left + right) / 4


def fit_box(gray: np.ndarray) -> np.ndarray:
    """Steps 4-5: the ink's bounding box resized so its longer side is BOX pixels, brightest pixel 255."""
    from PIL import Image

    if gray.max() < MIN_INK:
        raise NoInk("the image has no visible ink: expected one handwritten digit")
    ink = gray > INK_FRACTION * gray.max()
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    crop = gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = BOX / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))  # (width, height)
    # Two explicit one-axis passes, width first: Pillow may choose either order for a two-axis resize, and the order
    # changes the rounding of the 8-bit intermediate (the browser's copy of this step must give the same pixels).
    image = Image.fromarray(crop.astype(np.uint8))
    image = image.resize((size[0], image.height), Image.LANCZOS).resize(size, Image.LANCZOS)
    digit = np.asarray(image, dtype=np.float32)
    return np.clip(digit * (255.0 / max(digit.max(), 1.0)), 0, 255)


def centre_of_mass(digit: np.ndarray) -> np.ndarray:
    """Step 6: the digit in a SIDE x SIDE field, its centre of mass at the middle."""
    canvas = np.zeros((SIDE, SIDE), dtype=np.float32)
    top, left = (SIDE - digit.shape[0]) // 2, (SIDE - digit.shape[1]) // 2
    canvas[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    ys, xs = np.indices(canvas.shape)
    mass = canvas.sum(dtype=np.float64)
    middle = (SIDE - 1) / 2
    dy, dx = round(middle - (ys * canvas).sum() / mass), round(middle - (xs * canvas).sum() / mass)
    shifted = np.zeros_like(canvas)
    src = canvas[max(0, -dy) : SIDE - max(0, dy), max(0, -dx) : SIDE - max(0, dx)]
    shifted[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
    return shifted.round().astype(np.uint8)


def mnist_style(image) -> np.ndarray:
    """A PIL image of one digit -> uint8 (28, 28), light ink on black, as MNIST's digits were prepared."""
    return centre_of_mass(fit_box(ink_on_black(grayscale(image))))
