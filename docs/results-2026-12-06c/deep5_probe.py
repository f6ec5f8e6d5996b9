"""Probe (2026-12-06, the AMX Xeon): training-step throughput in bf16 autocast (`train.train_step`, batch 128,
AdamW, 2 threads, random pixels, 40 steps after 4 of warm-up, three repeats) of the deep CNN with 3x3 kernels (An
et al.'s M3) and with 5x5 kernels (their M5), both at width 32: how many epochs of M5 fit the 20-minute budget.

    .venv/bin/python docs/results-2026-12-06c/deep5_probe.py
"""

import time

import torch

from digitlab.config import ModelConfig
from digitlab.models import build_model
from digitlab.train import train_step

torch.set_num_threads(2)


def rate(config: ModelConfig, steps: int = 40, batch: int = 128) -> float:
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


models = {
    "deep32 k3 (M3)": ModelConfig(arch="deep", width=32, dropout=0.0),
    "deep32 k5 (M5)": ModelConfig(arch="deep", width=32, kernel=5, dropout=0.0),
}
for name, config in models.items():
    for _ in range(3):
        images_per_s = rate(config)
        print(
            f"{name:16s} bf16 {images_per_s:6.0f} img/s  {60_000 / images_per_s:5.1f} s/epoch  "
            f"{1200 * images_per_s / 60_000:5.1f} epochs in 20 min",
            flush=True,
        )
