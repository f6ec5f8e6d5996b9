"""Where the reference CNN's training step spends its time on this CPU: 30 steps of digitlab.train.train_step
(batch 64, the reference recipe's augmentation) under torch.profiler, after 10 warm-up steps; the operators by
self time, then the convolutions by input shape (one row per layer)."""

import torch
from torch.profiler import ProfilerActivity, profile

from digitlab.augment import augment_batch, make_generator
from digitlab.config import RunConfig
from digitlab.datasets import load_split
from digitlab.models import build_model
from digitlab.state import build_optimizer
from digitlab.train import train_step

torch.set_num_threads(2)
config = RunConfig()
images, labels = load_split("mnist", "train")
images, labels = torch.from_numpy(images[:, None]), torch.from_numpy(labels).long()
model = build_model(config.model).to(memory_format=torch.channels_last).train()
optimizer = build_optimizer(model, config.train)
generator = make_generator(0, torch.device("cpu"))


def steps(count: int, offset: int) -> None:
    for i in range(count):
        index = torch.arange((offset + i) * 64, (offset + i + 1) * 64)
        train_step(model, optimizer, augment_batch(images[index].float(), config.augment, generator), labels[index])


steps(10, 0)
with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
    steps(30, 10)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
by_shape = prof.key_averages(group_by_input_shape=True)
print("\n".join(f"{e.key:28s} {e.self_cpu_time_total / e.count / 1e3:7.2f} ms  {e.input_shapes[:3]}"
                for e in by_shape if "convolution" in e.key))  # fmt: skip
