"""Minor page faults and rate of the reference CNN's training step (batch 64, augmentation on): four blocks of 100
steps after 10 warm-up steps. `python faults.py keep` calls digitlab.state.keep_freed_memory first (glibc's
malloc settings can also come from the environment: MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_);
`python faults.py [keep] RECIPE` times that recipe's model, augmentation and batch size instead."""

import resource
import sys
import time

import torch

sys.path.insert(0, "benchmarks")
from bench_throughput import with_batch  # noqa: E402

from digitlab.augment import augment_batch, make_generator  # noqa: E402
from digitlab.config import RECIPE_NAMES, RunConfig, recipe  # noqa: E402
from digitlab.datasets import load_split  # noqa: E402
from digitlab.models import build_model  # noqa: E402
from digitlab.state import build_optimizer  # noqa: E402
from digitlab.train import train_step  # noqa: E402

if "keep" in sys.argv[1:]:
    from digitlab.state import keep_freed_memory

    print("keep_freed_memory:", keep_freed_memory())
names = [a for a in sys.argv[1:] if a in RECIPE_NAMES]
config = recipe(names[0]) if names else with_batch(RunConfig(), 64)
batch = config.train.batch_size
x_all, y_all = load_split("mnist", "train")
images, labels = torch.from_numpy(x_all).unsqueeze(1), torch.from_numpy(y_all)
torch.manual_seed(0)
model = build_model(config.model).to(memory_format=torch.channels_last)
optimizer = build_optimizer(model, config.train)
generator = make_generator(0, torch.device("cpu"))


def steps(count: int, offset: int) -> None:
    for i in range(count):
        index = torch.arange((offset + i) * batch, (offset + i + 1) * batch) % len(images)
        x = augment_batch(images[index].float(), config.augment, generator)
        train_step(model, optimizer, x, labels[index], config.train.label_smoothing, None)


steps(10, 0)
for r in range(4):
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    steps(100, 10 + 100 * r)
    seconds = time.perf_counter() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(f"block {r}: {100 * batch / seconds:,.0f} images/s, {faults / 100:,.0f} minor faults per step", flush=True)
