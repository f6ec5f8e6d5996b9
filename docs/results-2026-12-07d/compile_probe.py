"""Eager against torch.compile'd training step of the reference CNN (batch 64, augmentation on), alternating
blocks of 100 steps in one process; compile time measured apart."""

import statistics
import sys
import time

import torch

sys.path.insert(0, "benchmarks")
from bench_throughput import with_batch  # noqa: E402

from digitlab.augment import augment_batch, make_generator  # noqa: E402
from digitlab.config import RunConfig  # noqa: E402
from digitlab.datasets import load_split  # noqa: E402
from digitlab.models import build_model  # noqa: E402
from digitlab.state import build_optimizer  # noqa: E402
from digitlab.train import train_step  # noqa: E402

mode = sys.argv[1] if len(sys.argv) > 1 else "default"
config = with_batch(RunConfig(), 64)
x_all, y_all = load_split("mnist", "train")
images, labels = torch.from_numpy(x_all).unsqueeze(1), torch.from_numpy(y_all)


def setup(compiled):
    torch.manual_seed(0)
    model = build_model(config.model).to(memory_format=torch.channels_last)
    forward = torch.compile(model, mode=None if mode == "default" else mode) if compiled else model
    return forward, build_optimizer(model, config.train), make_generator(0, torch.device("cpu"))


def steps(state, count, offset):
    forward, optimizer, generator = state
    for i in range(count):
        index = torch.arange((offset + i) * 64, (offset + i + 1) * 64) % len(images)
        x = augment_batch(images[index].float(), config.augment, generator)
        train_step(forward, optimizer, x, labels[index], config.train.label_smoothing, None)


eager, compiled = setup(False), setup(True)
start = time.perf_counter()
steps(compiled, 3, 0)
print(f"compile + 3 steps: {time.perf_counter() - start:.1f} s", flush=True)
steps(eager, 10, 0)
steps(compiled, 10, 0)
rates = {"eager": [], "compiled": []}
for r in range(8):
    order = ["eager", "compiled"] if r % 2 == 0 else ["compiled", "eager"]
    for name in order:
        state = eager if name == "eager" else compiled
        t = time.perf_counter()
        steps(state, 100, 10 + r * 100)
        rates[name].append(6400 / (time.perf_counter() - t))
    print(f"round {r}: eager {rates['eager'][-1]:,.0f}  compiled {rates['compiled'][-1]:,.0f} images/s", flush=True)
ratios = [c / e for c, e in zip(rates["compiled"], rates["eager"])]
print(
    f"median eager {statistics.median(rates['eager']):,.0f}, compiled {statistics.median(rates['compiled']):,.0f}; "
    f"ratio median {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})"
)
