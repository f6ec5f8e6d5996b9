"""The deep CNN (M3: `--recipe best --arch deep --width 32 --dropout 0`, batch 128, fp32) on this CPU: images/s and
minor page faults per step over 20 steps after 3 warm-up steps, with glibc's defaults or, with `keep`,
digitlab.state.keep_freed_memory first. `python docs/results-2026-12-07d/m3_probe.py [keep]`"""

import dataclasses
import resource
import sys
import time

import torch

from digitlab.augment import augment_batch, make_generator
from digitlab.config import recipe
from digitlab.datasets import load_split
from digitlab.models import build_model
from digitlab.state import build_optimizer, keep_freed_memory
from digitlab.train import train_step

if sys.argv[1:] == ["keep"]:
    keep_freed_memory()
best = recipe("best")
config = dataclasses.replace(best, model=dataclasses.replace(best.model, arch="deep", width=32, dropout=0.0))
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


steps(3, 0)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
start = time.perf_counter()
steps(20, 3)
seconds = time.perf_counter() - start
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(f"{sys.argv[1:] or ['default']}: {20 * batch / seconds:,.0f} images/s, {faults / 20:,.0f} minor faults per step")
