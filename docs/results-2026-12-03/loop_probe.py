"""Probe (2026-12-03): where the training loop's steps of the fast recipe lose against bench_throughput's step.

The same compact CNN, optimizer, augmentation and train_step, timed in alternating rounds of 100 steps:
  bench       bench_throughput's step: consecutive images (arange), nothing else
  permuted    the loop's batches: slices of a random permutation of the 60,000 images
  loop        permuted, plus the loop's per-step bookkeeping (set_lr, the loss and accuracy sums on tensors)
Prints images/s per variant (median of the rounds) and the loop's own images/s from a 2-epoch `digitlab train
--recipe fast` run's history.json (epoch 1 pays the first step's set-up; epoch 2 is the steady rate).

    .venv/bin/python docs/results-2026-12-03/loop_probe.py
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from digitlab.augment import augment_batch, make_generator
from digitlab.config import recipe
from digitlab.datasets import load_split
from digitlab.models import build_model
from digitlab.state import build_optimizer
from digitlab.train import set_lr, train_step

config = recipe("fast")
batch, steps = config.train.batch_size, 100
train_images, train_labels = load_split("mnist", "train")
images = torch.from_numpy(train_images).unsqueeze(1)
labels = torch.from_numpy(train_labels)
torch.manual_seed(0)
model = build_model(config.model).to(memory_format=torch.channels_last)
optimizer = build_optimizer(model, config.train)
generator = make_generator(0, torch.device("cpu"))
order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))


def run(variant: str, offset: int) -> float:
    loss_sum, correct = torch.tensor(0.0), torch.tensor(0)
    start = time.perf_counter()
    for i in range(offset, offset + steps):
        if variant == "bench":
            index = torch.arange(i * batch, (i + 1) * batch) % len(images)
        else:
            index = order[(i * batch) % (len(images) - batch) :][:batch]
        if variant == "loop":
            set_lr(optimizer, 1e-3)
        x = augment_batch(images[index].float(), config.augment, generator)
        loss, logits = train_step(model, optimizer, x, labels[index], config.train.label_smoothing)
        if variant == "loop":
            loss_sum += loss * len(index)
            correct += (logits.argmax(1) == labels[index]).sum()
    return steps * batch / (time.perf_counter() - start)


run("bench", 0)  # warm-up: oneDNN primitives, the optimizer's first step
rates = {"bench": [], "permuted": [], "loop": []}
for r in range(5):
    for variant in rates:
        rates[variant].append(run(variant, 100 + r * steps))
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {batch}, {steps} steps a round, 5 rounds")
for variant, values in rates.items():
    rounds = ", ".join(f"{v:,.0f}" for v in values)
    print(f"{variant:>9}: {statistics.median(values):>8,.0f} images/s  (rounds: {rounds})")

with tempfile.TemporaryDirectory() as tmp:
    out = Path(tmp) / "run"
    command = [sys.executable, "-m", "digitlab.cli", "train", "--recipe", "fast", "--epochs", "2", "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True)
    history = json.loads((out / "history.json").read_text())
for row in history:
    print(f"digitlab train --recipe fast, epoch {row['epoch']}: {row['images_per_s']:>8,.0f} images/s")
