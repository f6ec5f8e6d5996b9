"""The models: every architecture and switch combination through forward, parameter counts, the summary."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn

from digitlab.config import ModelConfig
from digitlab.errors import DigitlabError
from digitlab.models import Deskew, InkWidth, build_model, summary

ARCHS = [("reference", 16, 3, "pool"), ("compact", 16, 3, "pool"), ("compact", 8, 3, "pool"),
         ("compact", 32, 3, "pool"), ("compact", 16, 3, "stride"), ("vgg", 8, 3, "pool"), ("vgg", 24, 3, "pool"),
         ("vgg", 8, 5, "pool"), ("deep", 8, 3, "pool"), ("deep", 16, 3, "pool"), ("deep", 8, 5, "pool")]  # fmt: skip


@pytest.mark.parametrize(
    "arch, width, kernel, stem, batch_norm, dropout, ink_width, deskew",
    [
        (*a, *s, *i)
        for a in ARCHS
        for s in itertools.product([True, False], [0.0, 0.25, 0.5])
        for i in [(0, False), (12, False), (0, True)]
    ],  # fmt: skip
)
def test_every_switch_combination_runs_forward_and_backward(
    arch, width, kernel, stem, batch_norm, dropout, ink_width, deskew
):
    config = ModelConfig(arch=arch, width=width, kernel=kernel, stem=stem, batch_norm=batch_norm, dropout=dropout,
                         ink_width=ink_width, deskew=deskew)  # fmt: skip
    model = build_model(config)
    x = torch.randint(0, 256, (4, 1, 28, 28)).float()
    out = model(x)
    assert out.shape == (4, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    kinds = {type(m) for m in model.modules()}
    assert (nn.BatchNorm2d in kinds) == batch_norm and (nn.BatchNorm1d in kinds) == (batch_norm and arch == "reference")
    assert (nn.Dropout in kinds) == (dropout > 0)
    assert (InkWidth in kinds) == (ink_width > 0) and (Deskew in kinds) == deskew
    model.eval()
    assert torch.equal(model(x), model(x))  # eval mode is deterministic whatever the switches


def test_parameter_counts_match_the_seed_with_channel_batchnorm():
    text = summary(build_model(ModelConfig()))
    # The seed printed 601,258 with its row-wise BatchNorm slip; over channels it is 601,578 (see models.py).
    assert "Total params: 601,578" in text
    assert "Trainable params: 598,250" in text
    assert "Non-trainable params: 3,328" in text
    assert "(None, 32, 26, 26)" in text and "(None, 1024)" in text and "(None, 10)" in text
    plain = summary(build_model(ModelConfig(batch_norm=False, dropout=0)))
    assert "Total params: 594,922" in plain and "Non-trainable params: 0" in plain


def test_compact_model_shapes_and_size():
    text = summary(build_model(ModelConfig(arch="compact", width=16, dropout=0)))
    assert "Total params: 29,658" in text and "Non-trainable params: 224" in text
    assert "(None, 16, 12, 12)" in text and "(None, 64, 3, 3)" in text and "(None, 576)" in text
    # without BN the convolutions carry their own bias again
    plain = build_model(ModelConfig(arch="compact", width=16, batch_norm=False))
    assert all(m.bias is not None for m in plain.modules() if isinstance(m, nn.Conv2d))


def test_the_compact_cnns_strided_stem():
    text = summary(build_model(ModelConfig(arch="compact", width=16, stem="stride", dropout=0)))
    assert "MaxPool2d)       (None, 16, 12, 12)" not in text and text.count("MaxPool2d") == 1
    assert "Conv2d)       (None, 16, 12, 12)" in text and "(None, 32, 5, 5)" in text and "(None, 64, 3, 3)" in text
    assert "Total params: 29,658" in text  # the same weights as the pooled stem: only where they are applied differs
    first = next(
        m for m in build_model(ModelConfig(arch="compact", stem="stride")).modules() if isinstance(m, nn.Conv2d)
    )
    assert first.stride == (2, 2) and first.kernel_size == (5, 5)
    with pytest.raises(DigitlabError, match="pool or stride"):
        ModelConfig(arch="compact", stem="patch")
    # the student recipe's stem does not stop a student of another architecture: models without a stem ignore it
    for arch in ("vgg", "reference"):
        assert str(build_model(ModelConfig(arch=arch, stem="stride"))) == str(build_model(ModelConfig(arch=arch)))


def test_the_stacked_cnn_with_5x5_kernels():
    text = summary(build_model(ModelConfig(arch="vgg", width=8, kernel=5, dropout=0)))
    assert "(None, 8, 24, 24)" in text and "(None, 16, 12, 12)" in text and "(None, 32, 3, 3)" in text
    convs = [m for m in build_model(ModelConfig(arch="vgg", kernel=5)).modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(5, 5)] * 5
    for bad, message in (({"arch": "vgg", "kernel": 7}, "must be 3 or 5"), ({"kernel": 5}, "only vgg and deep")):
        with pytest.raises(DigitlabError, match=message):
            ModelConfig(**bad)


def test_the_deep_cnn_keeps_the_resolution_and_grows_by_half_its_width():
    text = summary(build_model(ModelConfig(arch="deep", width=32, dropout=0)))
    # ten unpadded 3x3 convolutions, 28 -> 8 pixels, 32 to 176 channels, no pooling: 1,124,170 trainable weights
    assert "(None, 32, 26, 26)" in text and "(None, 48, 24, 24)" in text and "(None, 176, 8, 8)" in text
    assert "Pool" not in text and text.count("(Conv2d)") == 10 and "(None, 11264)" in text
    assert "Trainable params: 1,124,170" in text
    assert "(None, 88, 8, 8)" in summary(build_model(ModelConfig(arch="deep", width=16, dropout=0)))


def test_the_deep_cnn_with_5x5_kernels_is_five_layers_growing_by_its_width():
    text = summary(build_model(ModelConfig(arch="deep", width=32, kernel=5, dropout=0)))
    # An et al.'s "M5": 28 -> 24 -> 20 -> 16 -> 12 -> 8 pixels, 32 to 160 channels. Weights: 5x5 kernels
    # 25 x (1x32 + 32x64 + 64x96 + 96x128 + 128x160) = 1,024,800, BN 2 x 480 = 960, linear 10,240 x 10 + 10
    assert "(None, 32, 24, 24)" in text and "(None, 64, 20, 20)" in text and "(None, 160, 8, 8)" in text
    assert "Pool" not in text and text.count("(Conv2d)") == 5 and "(None, 10240)" in text
    assert "Trainable params: 1,128,170" in text


def test_input_is_raw_pixels():
    model = build_model(ModelConfig()).eval()
    assert model.normalize.mean.item() == pytest.approx(33.318)
    x = torch.full((1, 1, 28, 28), 255.0)
    assert torch.isfinite(model(x)).all()


def ink_box(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(width, centre) in pixels of each image's ink columns, ink being above half the image's brightest pixel."""
    ink = (images > images.amax(dim=(1, 2, 3), keepdim=True) / 2).any(dim=2).squeeze(1)  # (N, 28)
    columns = torch.arange(28)
    left = torch.where(ink, columns, 28).amin(1)
    right = torch.where(ink, columns, -1).amax(1)
    return right - left + 1, (left + right + 1) / 2


@pytest.mark.parametrize("pixels", [10, 14, 20])
def test_ink_width_stretches_every_digit_to_the_same_width_and_keeps_its_rows(pixels, mnist_test):
    images = torch.from_numpy(mnist_test[0][:500]).float().reshape(-1, 1, 28, 28)
    out = InkWidth(pixels)(images)
    width, centre = ink_box(out)
    width_before, centre_before = ink_box(images)
    assert (width_before - pixels).abs().float().mean() > 2  # MNIST's digits differ in width ...
    assert ((width - pixels).abs() <= 1).float().mean() > 0.9  # ... and afterwards nearly all are `pixels` wide
    assert (width - pixels).float().mean().abs() < 0.5
    assert ((centre - centre_before).abs() <= 1).float().mean() > 0.9  # in place: the box keeps its centre
    rows, rows_before = out.sum(dim=3) > 0, images.sum(dim=3) > 0  # (N, 1, 28): only x is resampled
    assert (rows == rows_before).float().mean() > 0.99
    assert out.min() >= 0 and out.max() <= 255 + 1e-3  # bilinear: a blend of pixels, nothing brighter


def test_ink_width_measures_the_ink_whatever_the_paper_and_leaves_blank_images_alone():
    digit = torch.zeros(1, 1, 28, 28)
    digit[0, 0, 6:22, 12:16] = 200.0  # a bar 4 pixels wide, columns 12-15
    paper = digit * 0.5 + 100  # fainter ink on grey paper: the same box
    for image in (digit, paper):
        out = InkWidth(16)(image)
        row = out[0, 0, 14] > (out.amin() + out.amax()) / 2
        assert row.sum() == 16 and row.nonzero().min() == 6  # 16 wide around the same centre (column 14)
        assert torch.allclose(out[0, 0, :6], image[0, 0, :6])  # rows without ink are resampled paper
    wide = torch.full((1, 1, 28, 28), 100.0)
    wide[0, 0, 6:22, 2:26] = 200.0  # 24 wide on grey paper: squeezed to 8, it samples 3x beyond the image's edges
    squeezed = InkWidth(8)(wide)
    assert (squeezed[0, 0, 14] > 150).sum() == 8 and squeezed[0, 0, 14].min() > 99  # outside is paper, not black
    blank = torch.zeros(3, 1, 28, 28)
    assert torch.equal(InkWidth(12)(blank), blank)
    same = torch.zeros(1, 1, 28, 28)
    same[0, 0, 5:20, 8:20] = 255.0  # already 12 wide: resampled at scale 1, pixel for pixel
    assert torch.allclose(InkWidth(12)(same), same)


def slant(images: torch.Tensor) -> torch.Tensor:
    """(N,) each image's ink slant, x pixels per y pixel: the x-y covariance of its intensity over the y variance."""
    weight = images[:, 0].double()
    mass = weight.sum(dim=(1, 2))
    ys, xs = torch.meshgrid(
        torch.arange(28.0, dtype=torch.double), torch.arange(28.0, dtype=torch.double), indexing="ij"
    )
    cy, cx = (weight * ys).sum(dim=(1, 2)) / mass, (weight * xs).sum(dim=(1, 2)) / mass
    dy, dx = ys - cy.reshape(-1, 1, 1), xs - cx.reshape(-1, 1, 1)
    return (weight * dx * dy).sum(dim=(1, 2)) / (weight * dy * dy).sum(dim=(1, 2))


def test_deskew_stands_mnist_digits_upright_and_keeps_their_ink_and_rows(mnist_test):
    images = torch.from_numpy(mnist_test[0][:500]).float().reshape(-1, 1, 28, 28)
    out = Deskew()(images)
    assert slant(images).abs().mean() > 0.1  # MNIST's digits lean, some by 45 degrees ...
    assert slant(out).abs().mean() < 0.01 and (slant(out).abs() < 0.05).float().mean() > 0.98  # ... and no longer
    kept = out.sum(dim=(1, 2, 3)) / images.sum(dim=(1, 2, 3))  # the ink is kept, but what is sheared off the edge
    assert (kept <= 1 + 1e-4).all() and ((kept - 1).abs() < 0.01).float().mean() > 0.98
    rows, rows_before = out.sum(dim=3) > 0, images.sum(dim=3) > 0  # only x is resampled
    assert (rows == rows_before).float().mean() > 0.99
    assert out.min() >= 0 and out.max() <= 255 + 1e-3


@pytest.mark.parametrize("lean", [-0.6, -0.25, 0.3, 0.7])
def test_deskew_undoes_a_shear_whatever_the_paper_and_leaves_upright_and_blank_images_alone(lean):
    upright = torch.zeros(1, 1, 28, 28)
    upright[0, 0, 6:22, 12:16] = 200.0  # a bar 4 pixels wide, columns 12-15, centroid row 13.5
    leaning = torch.zeros_like(upright)  # the bar sheared: row y shifted by lean * (y - 13.5) pixels
    for y in range(6, 22):
        shift = round(lean * (y - 13.5))
        leaning[0, 0, y, 12 + shift : 16 + shift] = 200.0
    assert abs(slant(leaning).item() - lean) < 0.1
    for paper in (0.0, 100.0):  # grey paper: the same shear undone
        out = Deskew()(leaning * (0.5 if paper else 1) + paper)
        assert abs(slant(out - paper).item()) < 0.03
        ink = (out[0, 0] - paper) > 50  # every bar row's ink is back within a pixel of columns 12-15
        columns = torch.arange(28.0)
        centres = (ink * columns).sum(1)[6:22] / ink.sum(1)[6:22]
        assert ((centres - 13.5).abs() <= 1.0).all(), centres
    assert torch.allclose(Deskew()(upright), upright, atol=1e-3)  # no slant: resampled pixel for pixel
    blank = torch.zeros(3, 1, 28, 28)
    assert torch.equal(Deskew()(blank), blank)


@pytest.mark.parametrize("input_layers", [{"ink_width": 12}, {"deskew": True}])
def test_a_model_with_its_input_layers_exports_to_onnx_with_the_same_probabilities(input_layers, tmp_path, mnist_test):
    pytest.importorskip("onnxruntime")
    from digitlab.checkpoint import save_checkpoint
    from digitlab.config import RunConfig
    from digitlab.export import onnx_graph, onnx_session, run_onnx

    torch.manual_seed(0)
    config = RunConfig(model=ModelConfig(arch="vgg", width=8, dropout=0, **input_layers))
    model = build_model(config.model).eval()
    save_checkpoint(tmp_path / "model.safetensors", model, config)
    (tmp_path / "model.onnx").write_bytes(onnx_graph(tmp_path / "model.safetensors")[0])
    images = mnist_test[0][:300].reshape(-1, 1, 28, 28).astype("float32")
    onnx_probs = run_onnx(onnx_session(tmp_path / "model.onnx"), images)
    with torch.no_grad():
        torch_probs = torch.softmax(model(torch.from_numpy(images)), 1).numpy()
    assert abs(onnx_probs - torch_probs).max() < 1e-4


def test_bad_configs_are_rejected():
    from digitlab.errors import DigitlabError

    for kwargs in ({"dropout": 1.0}, {"dropout": -0.1}, {"arch": "resnet"}, {"num_classes": 1}, {"width": 0},
                   {"ink_width": 3}, {"ink_width": 29}, {"ink_width": -1}):  # fmt: skip
        with pytest.raises(DigitlabError):
            ModelConfig(**kwargs)


@pytest.mark.parametrize(
    "arch, width, kernel, stem, batch_norm, dropout",
    [(*a, *s) for a in ARCHS for s in itertools.product([True, False], [0.0, 0.5])],
)
def test_folding_batchnorm_for_inference_is_exact(arch, width, kernel, stem, batch_norm, dropout):
    from digitlab.export import fold_batchnorm

    torch.manual_seed(0)
    config = ModelConfig(arch=arch, width=width, kernel=kernel, stem=stem, batch_norm=batch_norm, dropout=dropout)
    model = build_model(config)
    for m in model.modules():  # trained-looking statistics, so folding has something to get wrong
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()
    model.normalize.mean.fill_(33.3)
    model.normalize.std.fill_(78.6)
    model.eval()
    folded = fold_batchnorm(model)
    x = torch.randint(0, 256, (8, 1, 28, 28)).float()
    with torch.no_grad():
        expected, got = model(x), folded(x)
    assert torch.allclose(got, expected, atol=1e-4 * expected.abs().max().item()), (got - expected).abs().max()
    kinds = [type(m) for m in folded]
    if arch == "reference":  # every BN there precedes an unpadded conv or a linear layer: all fold away
        assert not any(issubclass(k, nn.modules.batchnorm._BatchNorm) for k in kinds)
    assert nn.Dropout not in kinds and model.training is False


@pytest.mark.parametrize("positive", [True, False])
def test_batchnorm_after_pooling_folds_back_into_the_convolution_when_its_scales_are_positive(positive):
    from digitlab.export import fold_batchnorm

    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="compact", width=8, dropout=0.0))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 2.0)
            m.weight.data[0] *= 1 if positive else -1  # one channel's negative scale turns a maximum into a minimum
            m.bias.data.normal_()
    model.eval()
    folded = fold_batchnorm(model)
    x = torch.randint(0, 256, (8, 1, 28, 28)).float()
    with torch.no_grad():
        expected, got = model(x), folded(x)
    assert torch.allclose(got, expected, atol=1e-4 * expected.abs().max().item()), (got - expected).abs().max()
    kinds = [type(m) for m in folded]
    # the last BatchNorm follows its convolution directly and stays for ONNX Runtime to fuse; the pooled ones go
    assert kinds.count(nn.BatchNorm2d) == (1 if positive else 3)
    if positive:
        assert kinds[:6] == [nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Conv2d, nn.ReLU, nn.MaxPool2d]
