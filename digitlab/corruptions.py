"""A fixed, seeded suite of image corruptions for measuring robustness, in the spirit of MNIST-C.

Each corruption maps uint8 images (N, 28, 28), light ink on black, and a `numpy.random.Generator` to uint8 images of
the same shape; given the same generator state it gives the same pixels (the suite seeds one generator per
corruption from its name, so a suite is reproducible image for image). Where a corruption is one of MNIST-C's (Mu and
Gilmer, 2019, "MNIST-C: A Robustness Benchmark for Computer Vision", github.com/google-research/mnist-c) it uses the
severity MNIST-C's released dataset was made with, so its figures compare with that paper's; the libraries are
scikit-image, SciPy and Pillow. Differences, stated: motion blur is a one-sided Gaussian-weighted line kernel (the
shape of ImageMagick's `-motion-blur`, which MNIST-C called through Wand) built with SciPy; fog draws its plasma
fractal on a 64 x 64 grid (MNIST-C: 256, of which it keeps the 28 x 28 corner — the same scales at the digit's size).

Added beyond MNIST-C's 15: Gaussian blur, contrast, low resolution (pixelate), JPEG at quality 7 and inversion (from
MNIST-C's extended list, their default severities), and thinner/thicker strokes (grey erosion/dilation, 2 x 2).
"""

from __future__ import annotations

import io
import zlib

import numpy as np

SIDE = 28
CENTRE = 13.5


def _unit(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float64) / 255.0


def _uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def _per_image(images, function) -> np.ndarray:
    return np.stack([function(image) for image in _unit(images)])


# ------------------------------------------------------------------------------------------------------ noise
def shot_noise(images, rng):  # MNIST-C: Poisson with 3 photons per unit intensity (severity 5)
    return _uint8(rng.poisson(_unit(images) * 3) / 3.0)


def impulse_noise(images, rng):  # MNIST-C: salt and pepper, 17 % of the pixels (severity 4)
    from skimage.util import random_noise

    return _uint8(random_noise(_unit(images), mode="s&p", amount=0.17, rng=rng))


# ------------------------------------------------------------------------------------------------------ blur
def gaussian_blur(images, rng):  # MNIST-C (extended): sigma 2 pixels
    from scipy.ndimage import gaussian_filter

    return _uint8(gaussian_filter(_unit(images), sigma=(0, 2, 2), mode="nearest", truncate=4))


def glass_blur(images, rng):
    """MNIST-C (severity 1): blur (sigma 0.7), swap each pixel with one up to 1 away at random, twice, blur again."""
    from scipy.ndimage import gaussian_filter

    sigma, delta, rounds = 0.7, 1, 2
    x = (np.clip(gaussian_filter(_unit(images), (0, sigma, sigma), mode="nearest", truncate=4), 0, 1) * 255).astype(
        np.uint8
    )
    index = np.arange(len(x))
    for _ in range(rounds):
        for h in range(SIDE - delta, delta, -1):
            for w in range(SIDE - delta, delta, -1):
                swap = index[rng.random(len(x)) < 0.5]
                dy, dx = rng.integers(-delta, delta, size=(2, len(swap)))
                here, there = x[swap, h, w].copy(), x[swap, h + dy, w + dx]
                x[swap, h, w], x[swap, h + dy, w + dx] = there, here
    return _uint8(gaussian_filter(x / 255.0, (0, sigma, sigma), mode="nearest", truncate=4))


def motion_blur(images, rng):
    """MNIST-C (severity 1): radius 10, sigma 3, at an angle drawn from -45..45 degrees per image."""
    from scipy.ndimage import convolve

    distance = np.arange(0, 11)
    weights = np.exp(-(distance**2) / (2 * 3.0**2))

    def one(image):
        angle = np.deg2rad(rng.uniform(-45, 45))
        kernel = np.zeros((21, 21))
        ys = np.round(10 - distance * np.sin(angle)).astype(int)
        xs = np.round(10 - distance * np.cos(angle)).astype(int)  # trailing behind the motion, as ImageMagick does
        np.add.at(kernel, (ys, xs), weights)
        return convolve(image, kernel / kernel.sum(), mode="constant")

    return _uint8(_per_image(images, one))


# ------------------------------------------------------------------------------------------------------ affine
def _warp(images, rng, make) -> np.ndarray:
    """skimage's warp with an affine map about the image centre (13.5, 13.5), as MNIST-C builds it."""
    from skimage import transform

    def one(image):
        affine = make(transform)
        a1, a2 = affine.params[0, :2]
        b1, b2 = affine.params[1, :2]
        shift = [CENTRE * (1 - a1 - a2), CENTRE * (1 - b1 - b2)]
        centred = transform.AffineTransform(
            matrix=affine.params + np.array([[0, 0, shift[0]], [0, 0, shift[1]], [0, 0, 0]])
        )
        return transform.warp(image, inverse_map=centred)

    return _uint8(_per_image(images, one))


def shear(images, rng):  # MNIST-C: shear 0.4 (severity 2), direction at random
    return _warp(images, rng, lambda t: t.AffineTransform(shear=0.4 * rng.choice([-1, 1])))


def rotate(images, rng):  # MNIST-C: 0.4 rad = 23 degrees (severity 2), direction at random
    return _warp(images, rng, lambda t: t.AffineTransform(rotation=0.4 * rng.choice([-1, 1])))


def scale(images, rng):  # MNIST-C: inverse map scaled by 1/0.7, i.e. the digit shrunk to 70 % (severity 3)
    return _warp(images, rng, lambda t: t.AffineTransform(scale=(1 / 0.7, 1 / 0.7)))


def translate(images, rng):  # MNIST-C: 3 pixels along each axis (severity 3), directions at random
    from skimage import transform

    def one(image):
        dx, dy = 3 * rng.choice([-1, 1], 2)
        return transform.warp(image, inverse_map=transform.AffineTransform(translation=[dx, dy]))

    return _uint8(_per_image(images, one))


# ------------------------------------------------------------------------------------------------------ intensity
def brightness(images, rng):  # MNIST-C: +0.5 on HSV value (severity 5); for gray pixels value is the gray level
    return _uint8(_unit(images) + 0.5)


def contrast(images, rng):  # MNIST-C (extended): contrast to 10 % around each image's mean (severity 4)
    x = _unit(images)
    means = x.mean(axis=(1, 2), keepdims=True)
    return _uint8((x - means) * 0.1 + means)


def inverse(images, rng):  # MNIST-C (extended): dark ink on white
    return 255 - images


def stripe(images, rng):  # MNIST-C: the left and right quarters inverted
    x = images.copy()
    x[:, :, :7] = 255 - x[:, :, :7]
    x[:, :, 21:] = 255 - x[:, :, 21:]
    return x


# ------------------------------------------------------------------------------------------------------ lines
def _line(c0, r0, c1, r1) -> np.ndarray:
    """MNIST-C's anti-aliased line from column c0 to c1 (intensity log(1 - d / 2.3) + 1 at distance d)."""
    if c1 == c0:
        return np.zeros((SIDE, SIDE))
    cc, rr = np.meshgrid(np.arange(SIDE, dtype=float), np.arange(SIDE, dtype=float), sparse=True)
    slope = (r1 - r0) / (c1 - c0)
    distance = np.clip(np.abs(rr - (slope * (cc - c0) + r0)), 0, 2.3 - 1e-10)
    line = np.clip(np.log(1 - distance / 2.3) + 1, 0, 1)
    line[:, : int(np.floor(c0))] = 0
    line[:, int(np.ceil(c1)) :] = 0
    return line


def dotted_line(images, rng):  # MNIST-C: a line across, every other pair of columns blanked
    def one(image):
        r0, r1 = rng.integers(0, 27, size=2)
        line = _line(0, r0, 27, r1)
        for start in range(0, 28, 4):
            line[:, start : start + 2] = 0
        return image + line

    return _uint8(_per_image(images, one))


def zigzag(images, rng):  # MNIST-C: a zigzag of 2-pixel teeth across the image
    def one(image):
        r0 = rng.integers(0, 27)
        r1 = r0 + rng.integers(-5, 5)
        c0, c1, tooth = 2, 25, 2.0
        theta = np.arctan((r1 - r0) / (c1 - c0))
        length = (c1 - c0) / np.cos(theta)
        points = [(0.0, 0.0)] + [
            ((2 * i + 1) * tooth, (-1) ** i * tooth) for i in range(int((length - tooth) // (2 * tooth)) + 1)
        ]
        last = (2 * tooth) * (length // (2 * tooth))
        if length != last:
            points.append((length, points[-1][1] / (2 * (length - last))))
        rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        cs, rs = rotation @ np.array(points).T
        cs, rs = cs + c0, rs + r0
        for i in range(1, len(cs)):
            image = np.clip(image + _line(cs[i - 1], rs[i - 1], cs[i], rs[i]), 0, 1)
        return image

    return _uint8(_per_image(images, one))


# ------------------------------------------------------------------------------------------------------ weather
def _plasma(rng, size: int = 64, decay: float = 1.4) -> np.ndarray:
    """The diamond-square plasma fractal MNIST-C's fog uses, values 0..1."""
    grid = np.zeros((size, size))
    step, wibble = size, 100.0
    while step >= 2:
        half = step // 2
        corners = grid[0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, 0)
        square = square + np.roll(square, -1, 1)
        grid[half:size:step, half:size:step] = square / 4 + wibble * rng.uniform(-wibble, wibble, square.shape)
        centres = grid[half:size:step, half:size:step]
        left = centres + np.roll(centres, 1, 0) + corners + np.roll(corners, -1, 1)
        grid[0:size:step, half:size:step] = left / 4 + wibble * rng.uniform(-wibble, wibble, left.shape)
        top = centres + np.roll(centres, 1, 1) + corners + np.roll(corners, -1, 0)
        grid[half:size:step, 0:size:step] = top / 4 + wibble * rng.uniform(-wibble, wibble, top.shape)
        step, wibble = half, wibble / decay
    grid -= grid.min()
    return grid / grid.max()


def fog(images, rng):  # MNIST-C: plasma fog of strength 3, decay 1.4 (severity 5)
    def one(image):
        peak = image.max()
        return (image + 3.0 * _plasma(rng)[:SIDE, :SIDE]) * peak / (peak + 3.0)

    return _uint8(_per_image(images, one))


def spatter(images, rng):  # MNIST-C (severity 4): gray mud blotches
    from scipy.ndimage import gaussian_filter

    def one(image):
        liquid = gaussian_filter(rng.normal(0.65, 0.3, image.shape), 1, mode="nearest", truncate=4)
        liquid[liquid < 0.65] = 0
        mask = gaussian_filter((liquid > 0.65).astype(float), 1.5, mode="nearest", truncate=4)
        mask[mask < 0.8] = 0
        return image * (1 - mask) + 63 / 255 * mask

    return _uint8(_per_image(images, one))


# ------------------------------------------------------------------------------------------------------ scans
def canny_edges(images, rng):  # MNIST-C: only the digit's outline (Canny, sigma 1)
    from skimage.feature import canny

    return _uint8(_per_image(images, lambda image: canny(image).astype(float)))


def thinner(images, rng):  # a thin pen: grey erosion by 2 x 2
    from scipy.ndimage import grey_erosion

    return grey_erosion(images, size=(1, 2, 2))


def thicker(images, rng):  # a thick marker: grey dilation by 2 x 2
    from scipy.ndimage import grey_dilation

    return grey_dilation(images, size=(1, 2, 2))


def pixelate(images, rng):  # MNIST-C (extended, severity 3): box-down to 11 x 11 and back
    from PIL import Image

    def one(image):
        small = Image.fromarray(image).resize((11, 11), Image.BOX)
        return np.asarray(small.resize((SIDE, SIDE), Image.BOX))

    return np.stack([one(image) for image in images])


def jpeg(images, rng):  # MNIST-C (extended, severity 5): JPEG at quality 7
    from PIL import Image

    def one(image):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=7)
        return np.asarray(Image.open(buffer).convert("L"))

    return np.stack([one(image) for image in images])


CORRUPTIONS = {
    function.__name__: function
    for function in (
        shot_noise, impulse_noise, gaussian_blur, glass_blur, motion_blur, shear, scale, rotate, translate,
        brightness, contrast, stripe, inverse, dotted_line, zigzag, fog, spatter, canny_edges, thinner, thicker,
        pixelate, jpeg,
    )
}  # fmt: skip


def corrupt(name: str, images: np.ndarray, seed: int = 0) -> np.ndarray:
    """`images` under the named corruption, with a generator seeded from (seed, the name): the same call gives the
    same pixels on any machine."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    if len(images) == 0:
        return images.copy()
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return CORRUPTIONS[name](images, rng)


def examples(images: np.ndarray, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """One test digit under every corruption, for the report: images and captions."""
    shown = [images[0]] + [corrupt(name, images[:1], seed)[0] for name in CORRUPTIONS]
    return np.stack(shown), ["clean", *CORRUPTIONS]
