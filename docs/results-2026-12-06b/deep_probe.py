"""Probe (2026-12-06, the AMX Xeon): training-step throughput in bf16 autocast (`train.train_step`, batch 128,
AdamW, 2 threads, random pixels) of the deep CNN (ten unpadded 3x3 convolutions, no pooling) at widths 16, 24 and
32, beside the reference CNN and the stacked CNN at widths 32 and 48 that the `best` and `robust` final models use:
which widths fit the 20-minute budget, and for how many epochs.

    .venv/bin/python docs/results-2026-12-06b/deep_probe.py
"""

import time

import torch

from digitlab.config import ModelConfig
from digitlab.models import build_model
from digitlab.train import train_step

torch.set_num_threads(2)


def rate(config: ModelConfig, steps: int = 15, batch: int = 128) -> float:
    torch.manual_seed(0)
    model = build_model(config).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    x, y = torch.rand(batch, 1, 28, 28) * 255, torch.randint(0, 10, (batch,))
    for _ in range(4):  # warm-up: oneDNN picks and caches its kernels
        train_step(model, optimizer, x, y, 0.1, torch.bfloat16)
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, x, y, 0.1, torch.bfloat16)
    return steps * batch / (time.perf_counter() - start)


models = {"reference": ModelConfig(), "vgg32": ModelConfig(arch="vgg", width=32, dropout=0.1)}
models |= {"vgg48": ModelConfig(arch="vgg", width=48, dropout=0.1)}
models |= {f"deep{w}": ModelConfig(arch="deep", width=w, dropout=0.0) for w in (16, 24, 32)}
for name, config in models.items():
    images_per_s = rate(config)
    epochs_in_20_min = 20 * 60 * images_per_s / 60_000
    print(
        f"{name:10s} bf16 {images_per_s:7.0f} img/s  {60_000 / images_per_s:6.1f} s/epoch  "
        f"{epochs_in_20_min:5.1f} epochs in 20 min",
        flush=True,
    )
