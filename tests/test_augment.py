"""Augmentation: zero ranges reproduce the input, a seed reproduces a batch, ranges bound what happens."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from digitlab.augment import affine_grid, augment_batch, make_generator, random_affine_matrices
from digitlab.config import AugmentConfig

ZERO = AugmentConfig(rotation_deg=0, shift=0, shear_rad=0, zoom=0)


def batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 28, 28), generator=g).float()


def test_zero_parameters_reproduce_the_input():
    x = batch()
    out = augment_batch(x, ZERO, make_generator(0, "cpu"))
    assert torch.allclose(out, x, atol=1e-3)


def test_disabled_is_identity_object():
    x = batch()
    assert augment_batch(x, AugmentConfig(enabled=False), make_generator(0, "cpu")) is x


def test_fixed_seed_reproduces_a_batch_and_seeds_differ():
    x = batch()
    a = augment_batch(x, AugmentConfig(), make_generator(42, "cpu"))
    b = augment_batch(x, AugmentConfig(), make_generator(42, "cpu"))
    c = augment_batch(x, AugmentConfig(), make_generator(43, "cpu"))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a, x)


def test_each_image_gets_its_own_transform():
    x = batch(1).repeat(8, 1, 1, 1)
    out = augment_batch(x, AugmentConfig(), make_generator(0, "cpu"))
    assert len({tuple(o.flatten()[:50].tolist()) for o in out}) == 8


@settings(max_examples=40, deadline=None)
@given(
    rot=st.floats(0, 30),
    shift=st.floats(0, 0.3),
    shear=st.floats(0, 0.6),
    zoom=st.floats(0, 0.3),
    seed=st.integers(0, 2**31),
)
def test_matrices_stay_within_the_configured_ranges(rot, shift, shear, zoom, seed):
    config = AugmentConfig(rotation_deg=rot, shift=shift, shear_rad=shear, zoom=zoom)
    theta = random_affine_matrices(256, config, make_generator(seed, "cpu"), "cpu")
    assert theta.shape == (256, 2, 3)
    assert theta[:, :, 2].abs().max() <= 2 * shift + 1e-6  # shift in [-1, 1] units
    det = torch.linalg.det(theta[:, :, :2])  # rotation: 1, shear: cos, zoom: zx*zy
    low = math.cos(shear) * (1 - zoom) ** 2 - 1e-5
    high = (1 + zoom) ** 2 + 1e-5
    assert det.min() >= low and det.max() <= high


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 40), height=st.integers(1, 40), width=st.integers(1, 40))
def test_the_broadcast_grid_is_pytorchs_affine_grid(seed, n, height, width):
    """The oracle: F.affine_grid with align_corners=False, for any matrices and (also non-square) image sizes."""
    theta = torch.randn(n, 2, 3, generator=torch.Generator().manual_seed(seed))
    expected = torch.nn.functional.affine_grid(theta, [n, 1, height, width], align_corners=False)
    torch.testing.assert_close(affine_grid(theta, height, width), expected, rtol=0, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 40))
def test_output_is_a_valid_image_batch(seed, n):
    x = batch(n, seed % 1000)
    out = augment_batch(x, AugmentConfig(), make_generator(seed, "cpu"))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 255 + 1e-3  # bilinear interpolation never leaves the pixel range


@pytest.mark.parametrize("shift", [0.05, 0.1, 0.2])
def test_shift_only_moves_a_dot_within_the_configured_fraction(shift):
    """digitlab's own shift convention (a fraction of the side, drawn in [-1, 1] grid units): a dot's centre of mass
    moves by at most shift x 28 pixels on each axis, and the ink is kept."""
    x = torch.zeros(64, 1, 28, 28)
    x[:, 0, 14, 14] = 255
    config = AugmentConfig(rotation_deg=0, shear_rad=0, zoom=0, shift=shift)
    out = augment_batch(x, config, make_generator(0, "cpu"))
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    mass = out.sum(dim=(1, 2, 3))
    cy, cx = (out[:, 0] * ys).sum(dim=(1, 2)) / mass, (out[:, 0] * xs).sum(dim=(1, 2)) / mass
    limit = shift * 28 + 1e-3
    assert (cy - 14).abs().max() <= limit and (cx - 14).abs().max() <= limit
    assert (cx - 14).abs().max() > limit / 3  # the draws do use the range
    assert torch.allclose(mass, torch.full_like(mass, 255.0), rtol=1e-4)  # moved, not lost (the dot stays inside)


# ------------------------------------------------------------------------------------------- robustness options
ROBUST_OPTIONS = ("elastic", "stroke", "blur", "contrast", "noise", "invert", "erase", "hflip", "outline", "lines")


@pytest.mark.parametrize("name", ROBUST_OPTIONS)
def test_each_robustness_option_keeps_range_and_seed_and_changes_images(name):
    x = batch(64)
    config = dataclasses.replace(ZERO, **{name: 3.0 if name == "elastic" else 1.0})
    a = augment_batch(x, config, make_generator(5, "cpu"))
    assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 255 + 1e-3
    assert torch.equal(a, augment_batch(x, config, make_generator(5, "cpu")))  # the same seed, the same batch
    changed = (a - x).abs().amax((1, 2, 3)) > 1e-3
    assert changed.float().mean() > 0.9, f"{name} at full strength left most images unchanged"


@pytest.mark.parametrize("name", ROBUST_OPTIONS)
def test_an_option_at_zero_draws_nothing_so_the_seed_stream_is_unchanged(name):
    """Runs made before these options existed augment exactly as they did (resume and reproducibility)."""
    x = batch(32)
    plain = augment_batch(x, AugmentConfig(), make_generator(9, "cpu"))
    explicit_zero = augment_batch(x, AugmentConfig(**{name: 0.0}), make_generator(9, "cpu"))
    assert torch.equal(plain, explicit_zero)


@settings(max_examples=20, deadline=None)
@given(probability=st.floats(0.05, 0.95), seed=st.integers(0, 2**31 - 1))
def test_invert_applies_to_about_its_share_of_images(probability, seed):
    x = batch(400, seed=1)
    config = dataclasses.replace(ZERO, invert=probability)
    out = augment_batch(x, config, make_generator(seed, "cpu"))
    inverted = ((out - (255 - x)).abs().amax((1, 2, 3)) < 1e-2).float().mean().item()
    assert abs(inverted - probability) < 0.12  # 400 draws: 5 standard errors at p = 0.5 is 0.125


def test_options_are_validated():
    with pytest.raises(Exception, match="probabilities"):
        AugmentConfig(blur=1.5)
    with pytest.raises(Exception, match="elastic"):
        AugmentConfig(elastic=-1)


def test_outline_keeps_the_rim_and_hollows_the_stroke():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 8:20, 12:17] = 255  # a 5-pixel-wide bar
    out = augment_batch(x, dataclasses.replace(ZERO, outline=1.0), make_generator(0, "cpu"))
    assert float(out[0, 0, 14, 14]) == 0  # the inside of the stroke is dark
    assert float(out[0, 0, 14, 11]) == 255 and float(out[0, 0, 14, 17]) == 255  # the rim next to it is ink
    assert float(out[0, 0, 2, 2]) == 0  # paper far away stays paper


def test_lines_only_add_ink_along_one_line():
    x = batch(64)
    out = augment_batch(x, dataclasses.replace(ZERO, lines=1.0), make_generator(3, "cpu"))
    assert torch.all(out >= x - 1e-3)  # ink is added, never removed (1e-3: the identity resampling's rounding)
    added = (out - x > 1).float().sum((1, 2, 3))
    assert added.max() <= 28 * 28 * 0.4  # a line of at most ~4.5 pixels wide, not a blot
    blank = torch.zeros(64, 1, 28, 28)
    drawn = augment_batch(blank, dataclasses.replace(ZERO, lines=1.0), make_generator(3, "cpu"))
    assert (drawn.amax((1, 2, 3)) >= 127.5 * 0.5).all()  # every chosen blank page gets a visible line
