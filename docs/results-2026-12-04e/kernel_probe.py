"""Training-step time of the stacked CNN at width 48 (3x3), width 32 with 5x5 kernels and width 32 (3x3): bf16
autocast, batch 128, channels-last, random data, AdamW; the mean of 30 steps after 10 warm-up steps.

    python docs/results-2026-12-04e/kernel_probe.py
"""

import time

import torch

from digitlab.config import ModelConfig
from digitlab.models import build_model

torch.manual_seed(0)
for width, kernel in ((48, 3), (32, 5), (32, 3)):
    model = build_model(ModelConfig(arch="vgg", width=width, kernel=kernel, dropout=0.1))
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randint(0, 256, (128, 1, 28, 28)).float().to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (128,))
    for step in range(40):
        if step == 10:
            start = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = (time.perf_counter() - start) / 30
    print(width, kernel, f"{seconds * 1e3:.1f} ms/step, epoch of 60k: {seconds * 469:.1f} s")
