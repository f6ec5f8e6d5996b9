"""Training images/s of a recipe's real step (augmentation, forward, loss, backward, optimizer: digitlab.train's
train_step on MNIST training images, as benchmarks/bench_throughput.py times it) with PyTorch's default for-loop
optimizer against its fused one, in alternating rounds in one process; each round builds a fresh seeded model, warms
up 10 steps, then times STEPS steps. Also the optimizer's step alone on the model's parameters. From the repo root
(2026-12-07, a 2-core AMD EPYC, Zen 3):

    python docs/results-2026-12-07b/optimizer_ab.py [--recipes reference,fast] [--rounds 5] [--steps 60] [--batch N]

Each recipe at its own batch size (128 for both) unless --batch sets one (bench_throughput's figure: batch 64).
"""

import argparse
import dataclasses
import json
import statistics
import time

import torch

from digitlab.augment import augment_batch, make_generator
from digitlab.config import recipe
from digitlab.data import load_source
from digitlab.models import build_model
from digitlab.train import train_step

parser = argparse.ArgumentParser()
parser.add_argument("--recipes", default="reference,fast")
parser.add_argument("--rounds", type=int, default=5)
parser.add_argument("--steps", type=int, default=60)
parser.add_argument("--batch", type=int, help="instead of each recipe's own batch size")
args = parser.parse_args()

train = load_source("mnist", "train")
images, labels = train.images, train.labels


def make_optimizer(model, config, fused: bool):
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[config.train.optimizer]
    return kind(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay, fused=fused or None)


def step_rate(config, fused: bool) -> float:
    torch.manual_seed(0)
    batch = config.train.batch_size
    model = build_model(config.model).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config, fused)
    generator = make_generator(0, "cpu")
    start = 0.0
    for i in range(10 + args.steps):
        if i == 10:
            start = time.perf_counter()
        index = torch.arange(i * batch, (i + 1) * batch) % len(images)
        x = augment_batch(images[index].float(), config.augment, generator)
        train_step(model, optimizer, x, labels[index], config.train.label_smoothing, None)
    return args.steps * batch / (time.perf_counter() - start)


def optimizer_ms(config, fused: bool) -> float:
    model = build_model(config.model)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    optimizer = make_optimizer(model, config, fused)
    for _ in range(10):
        optimizer.step()
    start = time.perf_counter()
    for _ in range(200):
        optimizer.step()
    return (time.perf_counter() - start) * 1000 / 200


result = {}
for name in args.recipes.split(","):
    config = recipe(name)
    if args.batch:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=args.batch))
    rates = {"for-loop": [], "fused": []}
    for r in range(args.rounds):
        for kind in ("for-loop", "fused") if r % 2 == 0 else ("fused", "for-loop"):
            rates[kind].append(step_rate(config, kind == "fused"))
            print(
                f"{name} batch {config.train.batch_size} round {r + 1} {kind:8s}: {rates[kind][-1]:7.1f} images/s",
                flush=True,
            )
    step_ms = {kind: optimizer_ms(config, kind == "fused") for kind in rates}
    medians = {kind: statistics.median(v) for kind, v in rates.items()}
    wins = sum(f > d for f, d in zip(rates["fused"], rates["for-loop"]))
    print(
        f"{name}: median {medians['for-loop']:.1f} -> {medians['fused']:.1f} images/s "
        f"({medians['fused'] / medians['for-loop']:.3f}x), fused faster in {wins} of {args.rounds} rounds; "
        f"{config.train.optimizer} step alone {step_ms['for-loop']:.2f} -> {step_ms['fused']:.2f} ms"
    )
    result[name] = {
        "batch": config.train.batch_size,
        "rates": rates,
        "medians": medians,
        "fused_wins": wins,
        "optimizer_step_ms": step_ms,
    }
print(json.dumps(result))
