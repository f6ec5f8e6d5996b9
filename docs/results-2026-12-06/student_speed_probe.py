"""Probe (2026-12-06): which compact-student layouts run >= 10x the reference CNN in ONNX Runtime at batch 64 on
this CPU? Random weights (speed does not depend on them), exported as digitlab exports (BatchNorms folded, softmax
on), timed over the 10,000 MNIST test images in interleaved rounds: in each, every graph makes one untimed pass
(another session's threads may still be spinning from the graph before; that would slow a short pass most) and
three timed ones; medians of all timed passes. With --profile, one profiled pass per graph sums ONNX Runtime's node
times by operator type.

    .venv/bin/python docs/results-2026-12-06/student_speed_probe.py [--profile]
"""

import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn

from digitlab.config import ModelConfig
from digitlab.datasets import load_split
from digitlab.export import WithSoftmax, fold_batchnorm
from digitlab.models import Normalize, build_model

images = load_split("mnist", "test")[0][:, None].astype(np.float32)  # (10000, 1, 28, 28)


def strided(w: int, k1: int = 5) -> nn.Module:
    """The compact CNN with its first convolution strided (stride 2) instead of followed by max-pooling."""
    size = (28 - k1) // 2 + 1  # 12 for k1 = 5, 13 for k1 = 4 / 3
    after2 = (size - 2) // 2
    return nn.Sequential(
        Normalize(),
        nn.Conv2d(1, w, k1, stride=2, bias=False), nn.BatchNorm2d(w), nn.ReLU(),  # w x size x size
        nn.Conv2d(w, 2 * w, 3, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(2 * w), nn.ReLU(),  # 2w x after2
        nn.Conv2d(2 * w, 4 * w, 3, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(),  # 4w x (after2 - 2)
        nn.Flatten(), nn.Linear(4 * w * (after2 - 2) ** 2, 10),
    )  # fmt: skip


CANDIDATES = {
    "reference": lambda: build_model(ModelConfig()),
    "compact16": lambda: build_model(ModelConfig(arch="compact", width=16, dropout=0.0)),
    "compact12": lambda: build_model(ModelConfig(arch="compact", width=12, dropout=0.0)),
    "strided16": lambda: strided(16),
    "strided32": lambda: strided(32),
}


def export(model: nn.Module, path: Path) -> None:
    program = torch.onnx.export(
        WithSoftmax(fold_batchnorm(model.eval())),
        (torch.zeros(2, 1, 28, 28),),
        input_names=["pixels"],
        dynamic_shapes={"pixels": {0: torch.export.Dim("batch")}},
        dynamo=True,
        verbose=False,
    )
    program.save(str(path))


def flops(model: nn.Module) -> float:
    total = 0

    def hook(module, _inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += 2 * output[0].numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, nn.Linear):
            total += 2 * module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()(torch.zeros(1, 1, 28, 28))
    for h in handles:
        h.remove()
    return total


def session(path: Path, profile: str | None = None):
    options = ort.SessionOptions()
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = profile
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def one_pass(s, batch: int = 64) -> float:
    name = s.get_inputs()[0].name
    start = time.perf_counter()
    for b in range(0, len(images), batch):
        s.run(None, {name: images[b : b + batch]})
    return len(images) / (time.perf_counter() - start)


def op_times(path: Path, folder: Path) -> dict[str, float]:
    s = session(path, str(folder / path.stem))
    one_pass(s)
    events = json.loads(Path(s.end_profiling()).read_text())
    totals = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            totals[e["args"]["op_name"]] += e["dur"]
    runs = len(images) / 64
    return {op: us / runs for op, us in totals.most_common()}  # microseconds per batch of 64


torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    folder = Path(tmp)
    paths, mflop = {}, {}
    for name, make in CANDIDATES.items():
        model = make()
        mflop[name] = flops(model) / 1e6
        paths[name] = folder / f"{name}.onnx"
        export(model, paths[name])
    sessions = {name: session(path) for name, path in paths.items()}
    for s in sessions.values():
        one_pass(s)  # warm-up
    rates = {name: [] for name in sessions}
    for round_ in range(5):
        order = list(sessions) if round_ % 2 == 0 else list(sessions)[::-1]
        for name in order:
            one_pass(sessions[name])
            rates[name] += [one_pass(sessions[name]) for _ in range(3)]
    reference = statistics.median(rates["reference"])
    print(f"{'model':<12}{'MFLOP':>8}{'images/s':>12}{'/ reference':>13}   rounds")
    for name, r in rates.items():
        median = statistics.median(r)
        print(f"{name:<12}{mflop[name]:>8.2f}{median:>12,.0f}{median / reference:>12.2f}x   "
              + ", ".join(f"{x:,.0f}" for x in r))  # fmt: skip
    if "--profile" in sys.argv:
        for name, path in paths.items():
            times = op_times(path, folder)
            print(f"{name}: " + ", ".join(f"{op} {us:.0f}" for op, us in times.items()) + " us per batch of 64")
