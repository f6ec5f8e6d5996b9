"""Batched random augmentation on the training device: the seed's ImageDataGenerator, and robustness options.

One affine matrix per image (rotation, shear, zoom about the centre, then shift), all drawn at once from an explicit
`torch.Generator`, applied to the whole batch with one sampling grid (`affine_grid`) and one `grid_sample`: no
per-image Python loop and no DataLoader workers. Pixels sampled from outside the image are 0 (background), as
MNIST's border is.

The matrix maps output coordinates to input coordinates in [-1, 1] units, the same convention Keras uses for its
transform matrix, so the ranges mean what they meant there: rotation ±8°, shifts ±8 % of the side, shear ±0.3 rad,
zoom factor in [0.92, 1.08] drawn separately for x and y.

Beyond the seed, each off unless its AugmentConfig field is set, all batched and drawn from the same generator:
elastic distortion, horizontal flip (clothing only), hollow strokes, stroke width, ink lines across the paper, Gaussian
blur, lower contrast, inversion, Gaussian noise and random erasing — the pen, paper and scanner differences the
robustness suite measures.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import AugmentConfig


def _uniform(n: int, half_range: float, generator: torch.Generator, device) -> torch.Tensor:
    """n draws uniform in [-half_range, half_range]."""
    return (torch.rand(n, generator=generator, device=device) * 2 - 1) * half_range


def random_affine_matrices(n: int, config: AugmentConfig, generator: torch.Generator, device) -> torch.Tensor:
    """(n, 2, 3) matrices for `F.affine_grid`, drawn from `generator`; all-zero ranges give the identity."""
    angle = _uniform(n, math.radians(config.rotation_deg), generator, device)
    shear = _uniform(n, config.shear_rad, generator, device)
    zoom_x = 1 + _uniform(n, config.zoom, generator, device)
    zoom_y = 1 + _uniform(n, config.zoom, generator, device)
    shift_x = _uniform(n, 2 * config.shift, generator, device)  # ×2: a fraction of the side is 2× in [-1, 1] units
    shift_y = _uniform(n, 2 * config.shift, generator, device)
    zeros, ones = torch.zeros_like(angle), torch.ones_like(angle)

    def mat(a, b, c, d):  # 2x2 matrices from batched entries: [[a, b], [c, d]]
        return torch.stack([torch.stack([a, b], -1), torch.stack([c, d], -1)], -2)

    rotation = mat(torch.cos(angle), -torch.sin(angle), torch.sin(angle), torch.cos(angle))
    shearing = mat(ones, -torch.sin(shear), zeros, torch.cos(shear))  # Keras' shear matrix
    zooming = mat(zoom_x, zeros, zeros, zoom_y)
    linear = rotation @ shearing @ zooming  # (n, 2, 2)
    translation = torch.stack([shift_x, shift_y], -1).unsqueeze(-1)  # (n, 2, 1)
    return torch.cat([linear, translation], dim=-1)  # (n, 2, 3)


def affine_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, H, W, 2) sampling grid of (N, 2, 3) matrices for `grid_sample`: `F.affine_grid(theta, size,
    align_corners=False)` as broadcast arithmetic, within 2.4e-7 of it for the augmentation's matrices.
    F.affine_grid multiplies every pixel's (x, y, 1) by its matrix in a batched product with an inner dimension of
    3, which the CPU's BLAS runs poorly: at batch 128 on a Zen 3 EPYC, 1.50 ms against 0.54 ms here, of a ~19 ms
    `fast` step (docs/results-2026-12-07b/grid_probe.txt)."""
    xs = (torch.arange(width, device=theta.device, dtype=theta.dtype) * 2 + 1) / width - 1  # pixel centres, (-1, 1)
    ys = (torch.arange(height, device=theta.device, dtype=theta.dtype) * 2 + 1) / height - 1
    a, b, shift = (column[:, None, None, :] for column in theta.unbind(-1))  # (N, 1, 1, 2) each
    return torch.addcmul(torch.addcmul(shift, a, xs[:, None]), b, ys[:, None, None])  # a x + b y + shift: (N, H, W, 2)


def augment_batch(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Randomly distort a float batch (N, 1, 28, 28), pixels 0..255; a disabled config returns it unchanged.

    The whole policy, in order: geometry (affine, elastic), then the pen (flip, outline, stroke width), the paper (ink
    lines) and the scan (blur, contrast, inversion, noise, erasing). A step whose strength is 0 draws nothing from
    the generator, so the seed's random stream, and every run made before these options existed, is unchanged."""
    if not config.enabled:
        return images
    theta = random_affine_matrices(len(images), config, generator, images.device).to(images.dtype)
    grid = affine_grid(theta, *images.shape[-2:])  # (N, 28, 28, 2)
    if config.elastic > 0:
        grid = grid + elastic_displacement(len(images), config.elastic, generator, images)
    x = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    x = _apply(chosen(x, config.hflip, generator), lambda t: t.flip(-1), x)
    x = _apply(chosen(x, config.outline, generator), outline, x)
    x = stroke_width(x, config.stroke, generator)
    x = ink_lines(x, config.lines, generator)
    x = gaussian_blur(x, config.blur, generator)
    x = lower_contrast(x, config.contrast, generator)
    x = _apply(chosen(x, config.invert, generator), lambda t: 255 - t, x)
    x = gaussian_noise(x, config.noise, generator)
    return random_erase(x, config.erase, generator)


def chosen(x: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor | None:
    """(N,) True for the images a step applies to, or None (nothing drawn) when its probability is 0."""
    if probability <= 0:
        return None
    return torch.rand(len(x), generator=generator, device=x.device) < probability


def _where(mask: torch.Tensor | None, changed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return x if mask is None else torch.where(mask[:, None, None, None], changed, x)


def _apply(mask: torch.Tensor | None, change, x: torch.Tensor) -> torch.Tensor:
    """change(x) on the chosen images; with no step drawn (mask None) nothing is computed (the outline of every
    batch, with its probability 0, took 2.5 of the 3.3 ms that augmenting a batch of 128 took in the fast recipe)."""
    return x if mask is None else _where(mask, change(x), x)


def _smooth(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, 28, 28) with one sigma (pixels) per image: a grouped convolution."""
    n, c = x.shape[:2]
    radius = int(math.ceil(3 * float(sigma.max())))
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(offsets[None] ** 2) / (2 * sigma[:, None].to(x.dtype) ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (N * C, 2r + 1)
    flat = x.reshape(1, n * c, *x.shape[2:])
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0)), kernel[:, None, None, :], groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius)), kernel[:, None, :, None], groups=n * c)
    return flat.reshape(x.shape)


def elastic_displacement(n: int, alpha: float, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """(N, 28, 28, 2) offsets for `affine_grid`: a random field on a 4 x 4 lattice, upsampled bicubically (smooth
    over ~7 pixels, in the spirit of Simard, Steinkraus and Platt, 2003), scaled to a peak of `alpha` pixels, in
    [-1, 1] units (2 / 28 per pixel). The coarse lattice costs a fraction of smoothing full-size noise."""
    coarse = torch.rand(n, 2, 4, 4, generator=generator, device=like.device, dtype=like.dtype) * 2 - 1
    field = F.interpolate(coarse, size=like.shape[-2:], mode="bicubic", align_corners=False)
    field = field / field.abs().amax((1, 2, 3), keepdim=True).clamp_min(1e-6)  # peak of 1 per image
    return (field * alpha * 2 / 28).permute(0, 2, 3, 1)


def stroke_width(x: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """A thicker (grey dilation) or thinner (grey erosion) stroke, 2 x 2, each half of the chosen images."""
    mask = chosen(x, probability, generator)
    if mask is None:
        return x
    thicker = (torch.rand(len(x), generator=generator, device=x.device) < 0.5)[:, None, None, None]
    changed = x.clone()
    padded = F.pad(x[mask], (0, 1, 0, 1))  # only the chosen images are filtered
    pooled = torch.where(thicker[mask], F.max_pool2d(padded, 2, 1), -F.max_pool2d(-padded, 2, 1))
    changed[mask] = pooled
    return changed


def outline(x: torch.Tensor) -> torch.Tensor:
    """Hollow strokes: the rim a 3 x 3 grey dilation adds around the ink, stretched back to the image's full ink level
    (the inside of each stroke goes dark) — what outline pens, bubble digits and outline fonts look like."""
    rim = F.max_pool2d(x, 3, 1, padding=1) - x
    peak = x.amax((1, 2, 3), keepdim=True)
    return (rim * peak / rim.amax((1, 2, 3), keepdim=True).clamp_min(1e-6)).clamp(0, 255)


def ink_lines(x: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """One straight ink line across the chosen images: any angle, through a point in the middle 20 x 20 pixels,
    0.5-2 pixels wide (anti-aliased by distance), 50-100 % of full ink, solid or (half of them) dashed with a
    3-6-pixel period — ruled paper, box borders and dotted guides on forms."""
    mask = chosen(x, probability, generator)
    if mask is None:
        return x
    n, side = len(x), x.shape[-1]
    draw = torch.rand(n, 7, generator=generator, device=x.device, dtype=x.dtype)
    angle = math.pi * draw[:, 0]
    centre_x, centre_y = 4 + 20 * draw[:, 1], 4 + 20 * draw[:, 2]
    half_width = 0.25 + 0.75 * draw[:, 3]
    ink = 127.5 + 127.5 * draw[:, 4]
    period = 3 + 3 * draw[:, 5]
    dashed = draw[:, 6] < 0.5
    coords = torch.arange(side, device=x.device, dtype=x.dtype)
    cols, rows = coords[None, None, :] - centre_x[:, None, None], coords[None, :, None] - centre_y[:, None, None]
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    across = (rows * cos - cols * sin).abs()  # (N, 28, 28): distance from the line, pixels
    along = cols * cos + rows * sin  # position along the line, pixels
    profile = (half_width[:, None, None] + 0.5 - across).clamp(0, 1)
    gap = dashed[:, None, None] & (torch.remainder(along, period[:, None, None]) >= period[:, None, None] / 2)
    line = (ink[:, None, None] * profile).masked_fill(gap, 0)[:, None]  # (N, 1, 28, 28)
    return _where(mask, torch.maximum(x, line), x)


def gaussian_blur(x: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    mask = chosen(x, probability, generator)
    if mask is None:
        return x
    sigma = 0.5 + 1.5 * torch.rand(len(x), generator=generator, device=x.device)
    blurred = x.clone()
    blurred[mask] = _smooth(x[mask], sigma[mask]) if mask.any() else x[mask]  # only the chosen images: cheaper
    return blurred


def lower_contrast(x: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """Faint ink on grey paper: ink scaled by 0.1-1, the background lifted by 0-50 % of full scale."""
    mask = chosen(x, probability, generator)
    if mask is None:
        return x
    ink = (0.1 + 0.9 * torch.rand(len(x), 1, 1, 1, generator=generator, device=x.device)).to(x.dtype)
    paper = (127.5 * torch.rand(len(x), 1, 1, 1, generator=generator, device=x.device)).to(x.dtype)
    return _where(mask, paper + x * ink * (1 - paper / 255), x)


def gaussian_noise(x: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    mask = chosen(x, probability, generator)
    if mask is None:
        return x
    sigma = 76.5 * torch.rand(len(x), 1, 1, 1, generator=generator, device=x.device).to(x.dtype)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * sigma
    return _where(mask, (x + noise).clamp(0, 255), x)


def random_erase(x: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """One rectangle of 2-20 % of the image (aspect ratio 0.3-3.3) set to 0 (Zhong et al., 2017)."""
    mask = chosen(x, probability, generator)
    if mask is None:
        return x
    n, side = len(x), x.shape[-1]
    draw = torch.rand(n, 4, generator=generator, device=x.device)
    area = (0.02 + 0.18 * draw[:, 0]) * side * side
    aspect = torch.exp(math.log(0.3) + (math.log(3.3) - math.log(0.3)) * draw[:, 1])
    height = (area * aspect).sqrt().clamp(1, side).floor()
    width = (area / aspect).sqrt().clamp(1, side).floor()
    top = ((side - height) * draw[:, 2]).floor()
    left = ((side - width) * draw[:, 3]).floor()
    rows = torch.arange(side, device=x.device)[None, :, None]
    cols = torch.arange(side, device=x.device)[None, None, :]
    box = (rows >= top[:, None, None]) & (rows < (top + height)[:, None, None])
    box = box & (cols >= left[:, None, None]) & (cols < (left + width)[:, None, None])  # (N, 28, 28)
    return _where(mask, x.masked_fill(box[:, None], 0), x)


def make_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A generator on `device` (CUDA draws need a CUDA generator), seeded for reproducible batches."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


TTA_SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))  # (dy, dx) in pixels: the identity and one-pixel moves


def shift_batch(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Move every image by whole pixels, filling with background (0); no wrap-around."""
    padded = F.pad(images, (1, 1, 1, 1))  # (N, C, 30, 30)
    return padded[..., 1 - dy : 29 - dy, 1 - dx : 29 - dx]


def tta_views(images: torch.Tensor, mirror: bool = False) -> list[torch.Tensor]:
    """Deterministic test-time views of a batch (N, 1, 28, 28): the batch itself and four one-pixel shifts, and with
    `mirror` the left-right mirror of each (for models trained on mirrored images: clothing, never digits)."""
    views = [shift_batch(images, dy, dx) for dy, dx in TTA_SHIFTS]
    return views + [view.flip(-1) for view in views] if mirror else views


def mirrored_in_training(config: AugmentConfig) -> bool:
    """Whether a model saw mirrored images in training, so that mirrored test-time views are images of its kind."""
    return config.enabled and config.hflip > 0
