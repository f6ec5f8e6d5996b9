"""Milliseconds and minor page faults per training step of a recipe's model (random images, the recipe's
augmentation, digitlab's train_step) in a fresh process, with glibc's malloc as it comes or with its trim and mmap
thresholds raised, and optionally the operators' profile. From the repo root (2026-12-07, a 2-core AMD EPYC, Zen 3):

    python docs/results-2026-12-07/step_probe.py --recipe fast --batch 128 [--malloc default|tuned] [--profile]

`--malloc tuned` calls mallopt before torch is imported. (In its first runs the random images were drawn as floats and
converted, 172 MB freed before the first step; drawn as bytes since, with the same result.)
"""

import argparse
import ctypes
import resource
import time

parser = argparse.ArgumentParser()
parser.add_argument("--recipe", default="fast")
parser.add_argument("--batch", type=int, default=128)
parser.add_argument("--malloc", choices=["default", "tuned"], default="default")
parser.add_argument("--profile", action="store_true")
args = parser.parse_args()
if args.malloc == "tuned":
    libc = ctypes.CDLL(None)
    # M_TRIM_THRESHOLD (-1) 256 MiB and M_MMAP_THRESHOLD (-3) 32 MiB, glibc's largest
    print("mallopt:", libc.mallopt(-1, 256 << 20), libc.mallopt(-3, 32 << 20))

import torch  # noqa: E402  (after mallopt, as in the digitlab command)
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from digitlab.augment import augment_batch, make_generator  # noqa: E402
from digitlab.config import recipe  # noqa: E402
from digitlab.models import build_model  # noqa: E402
from digitlab.state import build_optimizer  # noqa: E402
from digitlab.train import train_step  # noqa: E402

config = recipe(args.recipe)
torch.manual_seed(0)
model = build_model(config.model).to(memory_format=torch.channels_last).train()
optimizer = build_optimizer(model, config.train)
images = torch.randint(0, 256, (55_000, 1, 28, 28), dtype=torch.uint8)
labels = torch.randint(0, 10, (55_000,))
generator = make_generator(0, "cpu")


def step(i: int) -> None:
    index = torch.arange(i * args.batch, (i + 1) * args.batch)
    x = augment_batch(images[index].float(), config.augment, generator)
    _, logits = train_step(model, optimizer, x, labels[index], config.train.label_smoothing, None)
    (logits.argmax(1) == labels[index]).sum()


for i in range(30):  # warm-up
    step(i)
start, faults = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(100):
    step(i)
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / 100
print(
    f"{args.recipe}, batch {args.batch}, malloc {args.malloc}: {(time.perf_counter() - start) * 10:.2f} ms/step, "
    f"{faults:,.0f} page faults/step"
)
if args.profile:
    with profile(activities=[ProfilerActivity.CPU]) as p:
        for i in range(50):
            step(i)
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
