"""The baseline of the time-to-accuracy target: one epoch of the reference CNN written the plain PyTorch way.

The seed's layer stack in `torch.nn` with PyTorch's defaults, Adam at lr 1e-3, batch 64, no augmentation, the
60,000 MNIST training images already in memory as one normalised float tensor (so the time is the training loop
alone: no data loading, no evaluation, no interpreter start-up). Prints one JSON object with the epoch's seconds.

    python benchmarks/naive_epoch.py
"""

from __future__ import annotations

import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from digitlab.config import DataConfig
from digitlab.data import load_source


def reference_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.BatchNorm2d(32),
        nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.BatchNorm2d(32),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.BatchNorm2d(64),
        nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.BatchNorm1d(1024),
        nn.Linear(1024, 512), nn.ReLU(), nn.BatchNorm1d(512), nn.Dropout(0.5),
        nn.Linear(512, 10),
    )  # fmt: skip


def main() -> None:
    torch.manual_seed(0)
    train = load_source("mnist", "train", DataConfig().data_dir)
    x = train.images.float() / 255
    x = (x - x.mean()) / x.std()  # (60000, 1, 28, 28)
    y = train.labels
    model = reference_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    start = time.perf_counter()
    for batch in torch.randperm(len(x)).split(64):
        loss = F.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    print(json.dumps({"naive_epoch_s": seconds, "images": len(x), "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
