"""The precision a training run computes in: `--precision fp32` or `bf16` as asked, and for `auto` bf16 autocast
(weights and optimizer state stay fp32) where it trains faster on this machine.

On CUDA bf16 runs on tensor cores: `auto` takes it. On a CPU the instruction set does not tell: with AVX512-BF16 an
AMD EPYC (Zen 4) trained 1.5-2x faster in bf16 and an Intel Xeon 0.5-0.9x as fast; with AMX-BF16 1.4-2.7x faster;
without bf16 instructions 3-7x slower (README, Results). So on a CPU with bf16 instructions `auto` times a few
training steps of the run's own model at its own batch size in both precisions, on a copy, and takes bf16 only
when it is at least `BF16_MARGIN` times as fast: where the two tie (the compact CNN measured 1.00x) the choice must
not flip from run to run. The answer is cached in the data cache folder per CPU, torch version, threads, model and
batch size, so an ensemble's members and a repeated command agree without probing again; a resumed run keeps the
precision its checkpoint records.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import RunConfig, to_dict
from .datasets import data_root
from .errors import DigitlabError
from .files import atomic_write

BF16_MARGIN = 1.25  # fixed before measuring (docs/results-2026-12-06g/PLAN.md): ties 1.00x, gains 1.47-2.5x
CACHE_NAME = "precision.json"


def cpu_flags(cpuinfo: str) -> set[str]:
    """The first CPU's flags in /proc/cpuinfo's text."""
    line = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


@functools.cache
def this_cpu() -> tuple[str, bool]:
    """(model name, whether it has bf16 instructions: AVX512-BF16 or AMX-BF16); ("", False) without /proc/cpuinfo."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "", False
    name = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    return name, bool(cpu_flags(cpuinfo) & {"avx512_bf16", "amx_bf16"})


def timed_steps(model: torch.nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor, dtype, steps: int) -> float:
    """Seconds for `steps` training steps as train.train_step takes them (forward and loss under autocast in
    `dtype`, backward, optimizer step); written out here because train.py sits above this module."""
    start = time.perf_counter()
    for _ in range(steps):
        with torch.autocast(x.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def bf16_speedup(model: torch.nn.Module, batch_size: int, device: torch.device, rounds: int = 5) -> float:
    """How many times as fast a training step of `model` (on a copy: its weights and the random streams are left as
    they were) runs under bf16 autocast as in fp32, at `batch_size` random images on `device`. After two warm-up
    steps each, the two alternate in `rounds` rounds, so that a drift of the host's speed meets both; a round is as
    many steps as fill about 0.1 s in fp32 (one for a large model, ten or more for the compact CNN, whose milliseconds a
    step would otherwise leave the ratio to timer noise). The ratio of the median rounds."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        probe = copy.deepcopy(model).train()
        optimizer = torch.optim.AdamW(probe.parameters(), lr=1e-6)
        x = (torch.rand(batch_size, 1, 28, 28, device=device) * 255).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (batch_size,), device=device)
        times = {None: [], torch.bfloat16: []}
        for dtype in times:
            timed_steps(probe, optimizer, x, y, dtype, 2)  # warm-up: oneDNN picks and caches its kernels
        steps = max(1, math.ceil(0.1 / max(timed_steps(probe, optimizer, x, y, None, 1), 1e-6)))
        for _ in range(rounds):
            for dtype, seconds in times.items():
                seconds.append(timed_steps(probe, optimizer, x, y, dtype, steps))
    return statistics.median(times[None]) / statistics.median(times[torch.bfloat16])


def cache_key(config: RunConfig, device: torch.device) -> str:
    """What the probe's answer depends on: the CPU, torch, the threads, the model and the batch size."""
    what = {"cpu": this_cpu()[0], "torch": torch.__version__, "threads": torch.get_num_threads(),
            "device": device.type, "model": to_dict(config.model), "batch_size": config.train.batch_size}  # fmt: skip
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def read_cache(path: Path) -> dict:
    """The cached probe answers; an unreadable or damaged cache counts as empty (it is measured again)."""
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def measured_speedup(config: RunConfig, model: torch.nn.Module, device: torch.device) -> tuple[float, str]:
    """(bf16's speed-up for this run, 'cached' or 'measured now'), from the cache or from a probe then cached."""
    path = data_root(config.data.data_dir) / CACHE_NAME
    key = cache_key(config, device)
    entry = read_cache(path).get(key)
    if isinstance(entry, dict) and isinstance(entry.get("bf16_speedup"), (int, float)):
        return float(entry["bf16_speedup"]), "cached"
    speedup = round(bf16_speedup(model, config.train.batch_size, device), 3)  # as cached: later runs decide alike
    cache = read_cache(path)  # again: another process may have written since
    cache[key] = {"bf16_speedup": speedup, "cpu": this_cpu()[0], "arch": config.model.arch,
                  "batch_size": config.train.batch_size, "threads": torch.get_num_threads()}  # fmt: skip
    try:
        with atomic_write(path, "w") as f:
            json.dump(cache, f, indent=1)
    except (OSError, DigitlabError):  # a cache that cannot be written costs a probe next time, nothing more
        pass
    return speedup, "measured now"


def choose_autocast(config: RunConfig, model: torch.nn.Module, device: torch.device) -> tuple[torch.dtype | None, str]:
    """(the autocast dtype, None for plain fp32; why, in words for the log and metrics.json)."""
    precision = config.train.precision
    if precision != "auto":
        return (torch.bfloat16 if precision == "bf16" else None), f"{precision}, as asked"
    if device.type == "cuda":
        return torch.bfloat16, "auto: bf16 on CUDA"
    if device.type != "cpu" or not this_cpu()[1]:
        return None, "auto: fp32 (no bf16 instructions on this CPU)"
    speedup, source = measured_speedup(config, model, device)
    choice = "bf16" if speedup >= BF16_MARGIN else "fp32"
    why = f"auto: {choice} (bf16 steps {speedup:.2f}x as fast as fp32 on this CPU, {source}; bf16 needs {BF16_MARGIN}x)"
    return (torch.bfloat16 if choice == "bf16" else None), why
