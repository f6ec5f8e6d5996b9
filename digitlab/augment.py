"""Batched random affine augmentation on the training device, equivalent to the seed's ImageDataGenerator.

One affine matrix per image (rotation, shear, zoom about the centre, then shift), all drawn at once from an explicit
`torch.Generator`, applied to the whole batch with one `affine_grid` + `grid_sample`: no per-image Python loop and no
DataLoader workers. Pixels sampled from outside the image are 0 (background), as MNIST's border is.

The matrix maps output coordinates to input coordinates in [-1, 1] units, the same convention Keras uses for its
transform matrix, so the ranges mean what they meant there: rotation ±8°, shifts ±8 % of the side, shear ±0.3 rad,
zoom factor in [0.92, 1.08] drawn separately for x and y.
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


def augment_batch(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Randomly distort a float batch (N, 1, 28, 28); a disabled config returns the batch unchanged."""
    if not config.enabled:
        return images
    theta = random_affine_matrices(len(images), config, generator, images.device).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (N, 28, 28, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


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


def tta_views(images: torch.Tensor) -> list[torch.Tensor]:
    """Deterministic test-time views of a batch (N, 1, 28, 28): the batch itself and four one-pixel shifts."""
    return [shift_batch(images, dy, dx) for dy, dx in TTA_SHIFTS]
