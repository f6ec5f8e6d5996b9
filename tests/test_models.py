"""The reference CNN: every switch combination through forward, parameter counts, the summary."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn

from digitlab.config import ModelConfig
from digitlab.models import build_model, summary


@pytest.mark.parametrize("batch_norm, dropout", list(itertools.product([True, False], [0.0, 0.25, 0.5])))
def test_every_switch_combination_runs_forward_and_backward(batch_norm, dropout):
    model = build_model(ModelConfig(batch_norm=batch_norm, dropout=dropout))
    x = torch.randint(0, 256, (4, 1, 28, 28)).float()
    out = model(x)
    assert out.shape == (4, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    kinds = {type(m) for m in model.modules()}
    assert (nn.BatchNorm2d in kinds) == batch_norm and (nn.BatchNorm1d in kinds) == batch_norm
    assert (nn.Dropout in kinds) == (dropout > 0)
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


def test_input_is_raw_pixels():
    model = build_model(ModelConfig()).eval()
    assert model.normalize.mean.item() == pytest.approx(33.318)
    x = torch.full((1, 1, 28, 28), 255.0)
    assert torch.isfinite(model(x)).all()


def test_bad_configs_are_rejected():
    from digitlab.errors import DigitlabError
    for kwargs in ({"dropout": 1.0}, {"dropout": -0.1}, {"arch": "resnet"}, {"num_classes": 1}):
        with pytest.raises(DigitlabError):
            ModelConfig(**kwargs)
