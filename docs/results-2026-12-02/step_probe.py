"""Where the reference CNN's training step can go faster on this CPU: the same step (augmentation on the device,
forward, loss, backward, Adam; batch 64, the reference recipe) in four layouts, alternated in rounds so that the
VM's drift hits each alike. channels-last is what digitlab uses; oneDNN (mkldnn) off makes PyTorch use its own
im2col + GEMM convolutions. Prints images/s per round and the medians."""

import statistics
import time

import torch
import torch.nn.functional as F

from digitlab.augment import augment_batch, make_generator
from digitlab.config import RunConfig
from digitlab.datasets import load_split
from digitlab.models import build_model
from digitlab.state import build_optimizer

torch.set_num_threads(2)
config = RunConfig()
images, labels = load_split("mnist", "train")
images, labels = torch.from_numpy(images[:, None]), torch.from_numpy(labels).long()
BATCH, STEPS = 64, 40


def rate(layout: str, onednn: bool) -> float:
    torch.manual_seed(0)
    fmt = torch.channels_last if layout == "cl" else torch.contiguous_format
    model = build_model(config.model).to(memory_format=fmt).train()
    optimizer = build_optimizer(model, config.train)
    generator = make_generator(0, torch.device("cpu"))
    with torch.backends.mkldnn.flags(enabled=onednn):

        def steps(count, offset):
            for i in range(count):
                index = torch.arange((offset + i) * BATCH, (offset + i + 1) * BATCH) % len(images)
                x = augment_batch(images[index].float(), config.augment, generator).contiguous(memory_format=fmt)
                loss = F.cross_entropy(model(x), labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        steps(8, 0)
        start = time.perf_counter()
        steps(STEPS, 8)
        return STEPS * BATCH / (time.perf_counter() - start)


variants = [("cl", True), ("nchw", True), ("nchw", False), ("cl", False)]
results = {v: [] for v in variants}
for round_ in range(3):
    for v in variants:
        results[v].append(rate(*v))
        print(f"round {round_}: {v[0]:5s} oneDNN {'on ' if v[1] else 'off'} {results[v][-1]:7.0f} images/s", flush=True)
print("medians:")
for v, rates in results.items():
    print(f"  {v[0]:5s} oneDNN {'on ' if v[1] else 'off'} {statistics.median(rates):7.0f} images/s")
