"""Probe (2026-12-04, the AMX Xeon): training-step throughput, fp32 against bf16 autocast (`train.train_step`,
batch 128, AdamW, 2 threads, random pixels), for the reference CNN and the stacked CNN at widths 32, 48 and 64.

    .venv/bin/python docs/results-2026-12-04d/amx_probe.py
"""

import time

import torch

from digitlab.config import ModelConfig
from digitlab.models import build_model
from digitlab.train import train_step

torch.set_num_threads(2)


def rate(config: ModelConfig, autocast, steps: int = 25, batch: int = 128) -> float:
    torch.manual_seed(0)
    model = build_model(config).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    for _ in range(5):  # warm-up: oneDNN picks and caches its kernels
        train_step(model, optimizer, x, y, 0.1, autocast)
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, x, y, 0.1, autocast)
    return steps * batch / (time.perf_counter() - start)


models = {"reference": ModelConfig()} | {f"vgg{w}": ModelConfig(arch="vgg", width=w, dropout=0.1) for w in (32, 48, 64)}
for name, config in models.items():
    fp32, bf16 = rate(config, None), rate(config, torch.bfloat16)
    print(f"{name:10s} fp32 {fp32:7.0f} img/s  bf16 {bf16:7.0f} img/s  ratio {bf16 / fp32:.2f}", flush=True)
