"""How many of AdamW's second-moment entries (exp_avg_sq) are denormal floats during a real `fast` run, and what a
step costs with the CPU flushing denormals to zero or not. Real MNIST (the first 55,000 training images), the
recipe's model, augmentation, schedule and train_step; one process, the two settings alternating by epoch block.
From the repo root (2026-12-07, a 2-core AMD EPYC, Zen 3):

    python docs/results-2026-12-07b/denormal_probe.py [--recipe fast] [--flush off|on|alternate]

The recipe's whole schedule (5 epochs for `fast`), blocks of 43 steps.
"""

import argparse
import time

import torch

from digitlab.augment import augment_batch, make_generator
from digitlab.config import recipe
from digitlab.data import load_source
from digitlab.models import build_model
from digitlab.state import build_optimizer
from digitlab.train import lr_at, set_lr, train_step

parser = argparse.ArgumentParser()
parser.add_argument("--recipe", default="fast")
parser.add_argument("--flush", choices=["off", "on", "alternate"], default="alternate")
args = parser.parse_args()

config = recipe(args.recipe)
tc = config.train
train = load_source("mnist", "train")
images, labels = train.images[:55_000], train.labels[:55_000]
torch.manual_seed(0)
model = build_model(config.model).to(memory_format=torch.channels_last).train()
optimizer = build_optimizer(model, tc)
generator, shuffle = make_generator(0, "cpu"), torch.Generator().manual_seed(0)
steps_per_epoch = -(-len(images) // tc.batch_size)
total_steps = steps_per_epoch * tc.epochs


def denormal_share() -> tuple[int, int]:
    tiny = torch.finfo(torch.float32).tiny  # the smallest normal float32, 1.18e-38
    states = [s["exp_avg_sq"] for s in optimizer.state.values()]
    return sum(int(((s != 0) & (s.abs() < tiny)).sum()) for s in states), sum(s.numel() for s in states)


for epoch in range(tc.epochs):
    for block, batches in enumerate(torch.randperm(len(images), generator=shuffle).split(tc.batch_size * 43)):
        flush = {"off": False, "on": True, "alternate": block % 2 == 1}[args.flush]
        torch.set_flush_denormal(flush)
        start = time.perf_counter()
        for i, batch in enumerate(batches.split(tc.batch_size)):
            set_lr(optimizer, lr_at(epoch * steps_per_epoch + block * 43 + i, total_steps, tc))
            x = augment_batch(images[batch].float(), config.augment, generator)
            train_step(model, optimizer, x, labels[batch], tc.label_smoothing, None)
        ms = (time.perf_counter() - start) * 1000 / (i + 1)
        denormal, total = denormal_share()
        print(
            f"epoch {epoch + 1} block {block}: flush {'on ' if flush else 'off'} {ms:6.2f} ms/step, "
            f"denormal exp_avg_sq {denormal:,} of {total:,}",
            flush=True,
        )
