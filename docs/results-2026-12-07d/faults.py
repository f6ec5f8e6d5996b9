"""Minor page faults and rate of the reference CNN's training step (batch 64, augmentation on): four blocks of 100
steps after 10 warm-up steps. `python faults.py keep` calls digitlab.state.keep_freed_memory first (glibc's
malloc settings can also come from the environment: MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_);
`python faults.py [keep] RECIPE` times that recipe's model, augmentation and batch size instead. m3_probe.py
imports `step_loop` and `timed_block`."""

import dataclasses
import resource
import sys
import time

import torch

from digitlab.augment import augment_batch, make_generator
from digitlab.config import RECIPE_NAMES, RunConfig, recipe
from digitlab.datasets import load_split
from digitlab.models import build_model
from digitlab.state import build_optimizer, keep_freed_memory


def step_loop(config: RunConfig):
    """`steps(count, offset)`: that many real training steps of `config` (seed 0, MNIST's training images)."""
    from digitlab.train import train_step

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

    return steps


def timed_block(steps, count: int, offset: int, batch: int) -> tuple[float, float]:
    """(images/s, minor page faults per step) of `count` steps."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    steps(count, offset)
    seconds = time.perf_counter() - start
    return count * batch / seconds, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / count


def main() -> None:
    if "keep" in sys.argv[1:]:
        print("keep_freed_memory:", keep_freed_memory())
    names = [a for a in sys.argv[1:] if a in RECIPE_NAMES]
    if names:
        config = recipe(names[0])
    else:  # the reference CNN at batch 64, as the peers' comparison times it
        config = dataclasses.replace(RunConfig(), train=dataclasses.replace(RunConfig().train, batch_size=64))
    batch = config.train.batch_size
    steps = step_loop(config)
    steps(10, 0)
    for r in range(4):
        rate, faults = timed_block(steps, 100, 10 + 100 * r, batch)
        print(f"block {r}: {rate:,.0f} images/s, {faults:,.0f} minor faults per step", flush=True)


if __name__ == "__main__":
    main()
