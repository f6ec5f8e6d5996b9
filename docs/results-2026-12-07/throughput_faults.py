"""bench_throughput.py's training rates (its own train_rate: the reference CNN at batch 64, then the `fast` recipe),
in-process, with glibc malloc as it comes or with its trim and mmap thresholds raised first, and the minor page
faults each part took. From the repo root: python docs/results-2026-12-07/throughput_faults.py default|tuned
"""

import ctypes
import resource
import sys

if sys.argv[1] == "tuned":  # M_TRIM_THRESHOLD 256 MiB, M_MMAP_THRESHOLD 32 MiB, before torch is imported
    libc = ctypes.CDLL(None)
    libc.mallopt(-1, 256 << 20)
    libc.mallopt(-3, 32 << 20)
sys.path.insert(0, "benchmarks")

import torch  # noqa: E402
from bench_throughput import train_rate, with_batch  # noqa: E402

from digitlab.config import RunConfig, recipe  # noqa: E402
from digitlab.datasets import load_split  # noqa: E402


def faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


train_images, train_labels = load_split("mnist", "train")
images, labels = torch.from_numpy(train_images).unsqueeze(1), torch.from_numpy(train_labels)
cpu = torch.device("cpu")
start = faults()
reference = train_rate(images, labels, with_batch(RunConfig(), 64), cpu)
middle = faults()
fast = train_rate(images, labels, recipe("fast"), cpu)
print(
    f"{sys.argv[1]}: reference b64 {reference:,.0f} img/s ({middle - start:,} faults); "
    f"fast {fast:,.0f} img/s ({faults() - middle:,} faults)"
)
