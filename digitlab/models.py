"""The models, built from a `ModelConfig`, and a Keras-style summary: the seed's reference CNN and three others.

The reference CNN (arch "reference") of the seed, fast.ai's MNIST notebook in Keras:

    Normalize (x - mean) / std        input (N, 1, 28, 28), raw pixels 0..255
    Conv 3x3, 32, ReLU                -> 32 x 26 x 26
    BatchNorm                                                   (one of the three strategies; Identity when off)
    Conv 3x3, 32, ReLU                -> 32 x 24 x 24
    MaxPool 2                         -> 32 x 12 x 12
    BatchNorm
    Conv 3x3, 64, ReLU                -> 64 x 10 x 10
    BatchNorm
    Conv 3x3, 64, ReLU                -> 64 x 8 x 8
    MaxPool 2                         -> 64 x 4 x 4
    Flatten                           -> 1024
    BatchNorm
    Linear 512, ReLU
    BatchNorm
    Dropout p                                                   (another strategy; Identity when p = 0)
    Linear 10                         -> logits (softmax lives in the loss and in `predict`)

BatchNorm normalises over *channels*. The seed's Keras code passed `axis=1` to its convolutional BatchNormalization
layers, carried over from the channels-first Theano original; in channels-last TensorFlow that normalises over image
rows (its summary shows 104 = 4 x 26, 48 = 4 x 12 and 40 = 4 x 10 parameters). Channels is what was meant, so the
total here is 601,578 parameters (Keras counting) where the seed printed 601,258.

The compact CNN (arch "compact", width w; the `fast` and `student` recipes) spends its compute where it pays on a CPU:

    Normalize
    Conv 5x5, w                       -> w x 24 x 24      (stem "stride": one conv 5x5 with stride 2 instead)
    MaxPool 2, BatchNorm, ReLU        -> w x 12 x 12      (pooling first: BN and ReLU touch 4x fewer values)
    Conv 3x3, 2w                      -> 2w x 10 x 10
    MaxPool 2, BatchNorm, ReLU        -> 2w x 5 x 5
    Conv 3x3, 4w, BatchNorm, ReLU     -> 4w x 3 x 3
    Flatten, Dropout p, Linear 10     -> logits

At w = 16 it costs 1.7 MFLOP per image (the reference: 20.4) and has 29,658 parameters. Max-pooling commutes with
ReLU and with BN's per-channel affine map when its scale is positive, so pooling before BN changes little but cost.
With the strided stem it costs 1.4 MFLOP: the first layer computes a quarter of its positions and nothing pools
them, which in ONNX Runtime at batch 64 ran 1.3-1.4x faster than the pooled stem on an AMX Xeon (2026-12-06, README).

The stacked CNN (arch "vgg", width w) keeps the resolution longer: pairs of 3x3 convolutions before each pooling,
as in VGG, for images whose texture matters (Fashion-MNIST) or for more capacity per parameter:

    Normalize
    Conv 3x3, w, BN, ReLU             -> w x 26 x 26      (unpadded: the normalisation folds into it on export)
    Conv 3x3 same, w, BN, ReLU        -> w x 26 x 26
    MaxPool 2                         -> w x 13 x 13
    Conv 3x3 same, 2w, BN, ReLU       -> 2w x 13 x 13
    Conv 3x3 same, 2w, BN, ReLU       -> 2w x 13 x 13
    MaxPool 2                         -> 2w x 6 x 6
    Conv 3x3 same, 4w, BN, ReLU       -> 4w x 6 x 6
    MaxPool 2                         -> 4w x 3 x 3
    Flatten, Dropout p, Linear 10     -> logits

At w = 24 it costs 21 MFLOP per image, about the reference's, with 87,586 parameters. With `kernel` 5 every
convolution is 5x5 (the first, unpadded, gives w x 24 x 24; then 12, 6 and 3): the same depth with 2.4x the
compute, members whose receptive fields differ from the 3x3 stacks' for ensembles (at w = 32: 89 MFLOP).

The deep CNN (arch "deep", width w) never pools: ten unpadded 3x3 convolutions, each with BN and ReLU, shrink the
map by two pixels a layer while the channels grow by w/2 (An et al. 2020, arXiv:2008.10400, "M3", at w = 32):

    Normalize
    Conv 3x3, w, BN, ReLU             -> w x 26 x 26
    Conv 3x3, 1.5w, BN, ReLU          -> 1.5w x 24 x 24
    ...                                  (eight more, +w/2 channels and -2 pixels each)
    Conv 3x3, 5.5w, BN, ReLU          -> 5.5w x 8 x 8
    Flatten, Dropout p, Linear 10     -> logits

At w = 32 it costs 347 MFLOP per image (17x the reference CNN) with 1.12 M parameters; at w = 16, 87 MFLOP.

The normalisation constants are buffers set from the training data, so a saved model takes raw 0..255 pixels.

Any of them can first stretch or squeeze each digit horizontally until its ink is `ink_width` pixels wide (height
and horizontal centre kept; Ciresan et al. 2012, arXiv:1202.2745, trained committee members on MNIST normalised to
widths 10-20 so that their errors differ). It is a layer of the model, so evaluation, export and serving apply it
as training did, after augmentation; `nn.Identity()` when `ink_width` is 0. Before that, `deskew` can shear each
digit upright (a classic MNIST preprocessing, listed beside many classifiers in LeCun et al.'s comparison table). On
`fast` models it left clean accuracy as it was, made committees no better, and read other writers' digits and
corrupted scans a little better (2026-12-07, README).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .augment import affine_grid
from .config import ModelConfig

MNIST_MEAN, MNIST_STD = 33.318, 78.567  # MNIST training pixels, 0..255 scale; replaced by the data's own at training


class Normalize(nn.Module):
    def __init__(self, mean: float = MNIST_MEAN, std: float = MNIST_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class InkWidth(nn.Module):
    """Resample each image (N, 1, 28, 28) of raw pixels along x so that its ink box is `pixels` wide.

    Ink is what is brighter than halfway between the image's darkest and brightest pixel (the stroke's core, not its
    anti-aliased fringe), so a light background or a faint scan measures the same. The box keeps its centre column;
    bilinear resampling, the edge column repeated outside the image (paper stays paper). A blank image has no box
    and is left as it is (scale 1). Only ops that ONNX exports (GridSample, opset 16) and that run batched on any
    device."""

    def __init__(self, pixels: int):
        super().__init__()
        self.pixels = pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        low = x.amin(dim=(1, 2, 3), keepdim=True)
        high = x.amax(dim=(1, 2, 3), keepdim=True)
        ink = (x > (low + high) / 2).to(x.dtype).amax(dim=(1, 2))  # (N, W): 1 where a column has ink
        columns = torch.arange(width, device=x.device, dtype=x.dtype)
        left = (columns + (1 - ink) * width).amin(dim=1)  # first inked column; >= width when none
        right = (columns - (1 - ink) * width).amax(dim=1)  # last; < 0 when none
        has_ink = right >= left
        box = torch.where(has_ink, right - left + 1, torch.full_like(left, self.pixels))  # (N,) pixels
        centre = torch.where(has_ink, (left + right + 1) / 2, torch.full_like(left, width / 2))  # (N,) pixels
        # grid_sample's coordinates (align_corners=False): -1 and 1 are the image's outer edges.
        scale = (box / self.pixels).reshape(n, 1, 1)  # input pixels per output pixel
        centre = (centre * 2 / width - 1).reshape(n, 1, 1)
        xs = (columns + 0.5) * 2 / width - 1  # (W,) output pixel centres
        ys = (torch.arange(height, device=x.device, dtype=x.dtype) + 0.5) * 2 / height - 1  # (H,)
        grid_x = centre + (xs.reshape(1, 1, width) - centre) * scale  # (N, 1, W)
        grid = torch.stack([grid_x.expand(n, height, width), ys.reshape(1, height, 1).expand(n, height, width)], -1)
        return nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Deskew(nn.Module):
    """Shear each image (N, 1, 28, 28) of raw pixels horizontally so that its ink's slant is gone: the x-y covariance
    of the ink's intensity becomes 0 (second image moments; rows keep their height, the centroid row stays put).

    Intensity above the image's darkest pixel weighs each pixel, so a light background adds nothing. The slant (x
    pixels per y pixel) is clamped to +-1 (45 degrees); a blank image is left as it is. Bilinear resampling; outside
    the image is paper (the darkest pixel's value), so ink at an edge is not smeared. Only ops that ONNX exports,
    batched on any device."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        paper = x.amin(dim=(1, 2, 3), keepdim=True)  # (N, 1, 1, 1)
        weight = x - paper  # (N, 1, H, W)
        mass = weight.sum(dim=(1, 2, 3)).clamp_min(1e-6)  # (N,)
        xs = torch.arange(width, device=x.device, dtype=x.dtype)  # (W,) pixel columns
        ys = torch.arange(height, device=x.device, dtype=x.dtype)  # (H,) pixel rows
        row_mass = weight.sum(dim=(1, 3))  # (N, H)
        cy = (row_mass * ys).sum(1) / mass  # (N,) centroid row
        dy = ys.reshape(1, height) - cy.reshape(n, 1)  # (N, H)
        # x-y covariance: the sum of w (X - cx)(Y - cy) equals that of w X (Y - cy), as w (Y - cy) sums to 0
        xy = (weight.squeeze(1) * dy.reshape(n, height, 1) * xs).sum(dim=(1, 2)) / mass
        yy = (row_mass * dy * dy).sum(1) / mass
        slant = (xy / yy.clamp_min(1e-6)).clamp(-1.0, 1.0)  # (N,) x pixels per y pixel; 0 for a blank image
        # Output pixel (X, Y) takes the input at (X + slant (Y - cy), Y): in grid_sample's units (-1 and 1 are the
        # image's outer edges) x_in = x + slant (H / W) (y - cy_grid), an affine map per image
        cy_grid = (cy + 0.5) * 2 / height - 1
        shear = slant * height / width
        zeros, ones = torch.zeros_like(shear), torch.ones_like(shear)
        theta = torch.stack(
            [torch.stack([ones, shear, -shear * cy_grid], -1), torch.stack([zeros, ones, zeros], -1)], 1
        )
        grid = affine_grid(theta, height, width)  # (N, H, W, 2)
        sheared = nn.functional.grid_sample(weight, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return paper + sheared


def deskew_layer(config: ModelConfig) -> nn.Module:
    """Every model's first layer: `Deskew` when the config asks for it, else nothing (`nn.Identity()`)."""
    return Deskew() if config.deskew else nn.Identity()


def ink_width_layer(config: ModelConfig) -> nn.Module:
    """Every model's second layer: `InkWidth` when the config sets a width, else nothing (`nn.Identity()`)."""
    return InkWidth(config.ink_width) if config.ink_width else nn.Identity()


def conv_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size=3), nn.ReLU(inplace=True))


def conv_bn_relu(c_in: int, c_out: int, batch_norm: bool, kernel: int = 3, padding: int = 0) -> list[nn.Module]:
    """Convolution, BN (Identity when off), ReLU: the stacked and deep CNNs' layer. BN's shift makes a convolution
    bias redundant, so the convolution has one only without BN."""
    conv = nn.Conv2d(c_in, c_out, kernel_size=kernel, padding=padding, bias=not batch_norm)
    return [conv, nn.BatchNorm2d(c_out) if batch_norm else nn.Identity(), nn.ReLU(inplace=True)]


class ReferenceCNN(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()

        def bn2d(c):
            return nn.BatchNorm2d(c) if config.batch_norm else nn.Identity()

        def bn1d(n):
            return nn.BatchNorm1d(n) if config.batch_norm else nn.Identity()

        self.deskew = deskew_layer(config)
        self.ink_width = ink_width_layer(config)
        self.normalize = Normalize()
        self.features = nn.Sequential(
            conv_relu(1, 32),
            bn2d(32),
            conv_relu(32, 32),
            nn.MaxPool2d(2),
            bn2d(32),
            conv_relu(32, 64),
            bn2d(64),
            conv_relu(64, 64),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            bn1d(64 * 4 * 4),
            nn.Linear(64 * 4 * 4, 512),
            nn.ReLU(inplace=True),
            bn1d(512),
            nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity(),
            nn.Linear(512, config.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.deskew(x)  # (N, 1, 28, 28), raw pixels
        x = self.ink_width(x)
        x = self.normalize(x)
        x = self.features(x)  # (N, 64, 4, 4)
        return self.classifier(x)  # (N, classes)


def linear_head(channels: int, config: ModelConfig, side: int = 3) -> nn.Sequential:
    """Flatten a (channels, side, side) feature map, dropout (Identity when off), one linear layer to the logits:
    the compact, stacked and deep CNNs' classifier."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity(),
        nn.Linear(channels * side * side, config.num_classes),
    )


class CompactCNN(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        w = config.width

        def bn2d(c):
            return nn.BatchNorm2d(c) if config.batch_norm else nn.Identity()

        def conv(c_in, c_out, k):  # BN's shift makes a convolution bias redundant
            return nn.Conv2d(c_in, c_out, kernel_size=k, bias=not config.batch_norm)

        def stem():  # 28 x 28 -> w x 12 x 12, by pooling a 24 x 24 map, or by computing only every other position
            if config.stem == "stride":
                return [nn.Conv2d(1, w, kernel_size=5, stride=2, bias=not config.batch_norm)]
            return [conv(1, w, 5), nn.MaxPool2d(2)]

        self.deskew = deskew_layer(config)
        self.ink_width = ink_width_layer(config)
        self.normalize = Normalize()
        self.features = nn.Sequential(
            *stem(),
            bn2d(w),
            nn.ReLU(inplace=True),
            conv(w, 2 * w, 3),
            nn.MaxPool2d(2),
            bn2d(2 * w),
            nn.ReLU(inplace=True),
            conv(2 * w, 4 * w, 3),
            bn2d(4 * w),
            nn.ReLU(inplace=True),
        )
        self.classifier = linear_head(4 * w, config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.deskew(x)  # (N, 1, 28, 28), raw pixels
        x = self.ink_width(x)
        x = self.normalize(x)
        x = self.features(x)  # (N, 4w, 3, 3)
        return self.classifier(x)  # (N, classes)


class StackedCNN(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        w, k, bn = config.width, config.kernel, config.batch_norm
        same = k // 2  # padding that keeps the map's size

        self.deskew = deskew_layer(config)
        self.ink_width = ink_width_layer(config)
        self.normalize = Normalize()
        self.features = nn.Sequential(
            *conv_bn_relu(1, w, bn, k),  # unpadded: the normalisation folds into it on export
            *conv_bn_relu(w, w, bn, k, same),
            nn.MaxPool2d(2),
            *conv_bn_relu(w, 2 * w, bn, k, same),
            *conv_bn_relu(2 * w, 2 * w, bn, k, same),
            nn.MaxPool2d(2),
            *conv_bn_relu(2 * w, 4 * w, bn, k, same),
            nn.MaxPool2d(2),
        )
        self.classifier = linear_head(4 * w, config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.deskew(x)  # (N, 1, 28, 28), raw pixels
        x = self.ink_width(x)
        x = self.normalize(x)
        x = self.features(x)  # (N, 4w, 3, 3) with either kernel
        return self.classifier(x)  # (N, classes)


class DeepCNN(nn.Module):
    """Unpadded convolutions, no pooling, until the 28 x 28 input is an 8 x 8 map: ten 3x3 layers (An et al. 2020's
    "M3" at width 32) or five 5x5 layers (their "M5"). Channels grow by width/2 for each pixel a layer trims from
    each side: w, 1.5w, ..., 5.5w with 3x3 kernels, w, 2w, ..., 5w with 5x5."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        w, k = config.width, config.kernel
        layers, step = 20 // (k - 1), w * (k - 1) // 4  # 3x3: 10 layers, +w/2 each; 5x5: 5 layers, +w each
        channels = [1] + [w + i * step for i in range(layers)]
        pairs = zip(channels, channels[1:])
        convs = [m for c_in, c_out in pairs for m in conv_bn_relu(c_in, c_out, config.batch_norm, kernel=k)]
        self.deskew = deskew_layer(config)
        self.ink_width = ink_width_layer(config)
        self.normalize = Normalize()
        self.features = nn.Sequential(*convs)
        self.classifier = linear_head(channels[-1], config, side=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.deskew(x)  # (N, 1, 28, 28), raw pixels
        x = self.ink_width(x)
        x = self.normalize(x)
        x = self.features(x)  # (N, 5.5w or 5w, 8, 8): unpadded convolutions, no pooling
        return self.classifier(x)  # (N, classes)


ARCHITECTURES = {"reference": ReferenceCNN, "compact": CompactCNN, "vgg": StackedCNN, "deep": DeepCNN}


def build_model(config: ModelConfig) -> nn.Module:
    return ARCHITECTURES[config.arch](config)


# ---------------------------------------------------------------------------------------------------------- summary
def _leaf_modules(model: nn.Module):
    for name, module in model.named_modules():
        if not list(module.children()) and not isinstance(module, (nn.Identity, Normalize)):
            yield name, module


def _param_counts(module: nn.Module) -> tuple[int, int]:
    """(trainable, non-trainable) in Keras' sense: BatchNorm's running mean and variance count as non-trainable."""
    trainable = sum(p.numel() for p in module.parameters(recurse=False) if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters(recurse=False) if not p.requires_grad)
    frozen += sum(b.numel() for n, b in module.named_buffers(recurse=False) if n in ("running_mean", "running_var"))
    return trainable, frozen


@torch.no_grad()
def summary(model: nn.Module, input_shape=(1, 28, 28)) -> str:
    """A Keras-style table: layer, output shape, parameters, and the totals."""
    rows, hooks = [], []
    for name, module in _leaf_modules(model):

        def record(mod, _inputs, output, name=name):
            rows.append((f"{name} ({type(mod).__name__})", tuple(output.shape[1:]), sum(_param_counts(mod))))

        hooks.append(module.register_forward_hook(record))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        model(torch.zeros(1, *input_shape, device=device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    trainable = frozen = 0
    for module in model.modules():
        t, f = _param_counts(module)
        trainable, frozen = trainable + t, frozen + f
    width = max(len(r[0]) for r in rows) + 2
    line = "=" * (width + 40)
    head = f"{'Layer (type)':<{width}}{'Output Shape':<26}{'Param #':>14}"
    out = [f"Model: {type(model).__name__}", line, head, line]
    out += [f"{layer:<{width}}{str((None, *shape)):<26}{params:>14,}" for layer, shape, params in rows]
    out += [
        line,
        f"Total params: {trainable + frozen:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {frozen:,}",
        line,
    ]
    return "\n".join(out)
