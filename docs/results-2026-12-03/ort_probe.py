"""Probe (2026-12-03): ONNX Runtime inference at batch 64 of the fast recipe's compact CNN (the distilled student)
and of the reference CNN, exported as bench_throughput exports them, under a few session settings; the student's
target is >= 10x the reference CNN's rate. Also the fixed cost of one session.run (batch 1) and each graph's ops.

    .venv/bin/python docs/results-2026-12-03/ort_probe.py
"""

import collections
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from digitlab.config import RunConfig, recipe
from digitlab.datasets import load_split
from digitlab.export import WithSoftmax, fold_batchnorm
from digitlab.models import build_model

images = load_split("mnist", "test")[0][:10_000, None].astype(np.float32)  # (N, 1, 28, 28)


def export(model_config, path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(model_config).eval()
    program = torch.onnx.export(
        WithSoftmax(fold_batchnorm(model)),
        (torch.zeros(2, 1, 28, 28),),
        input_names=["pixels"],
        dynamic_shapes={"pixels": {0: torch.export.Dim("batch")}},
        dynamo=True,
        verbose=False,
    )
    program.save(str(path))


def session(path: Path, threads: int = 0, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL, spin: bool = True):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = level
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def rate(s, batch: int = 64, rounds: int = 5) -> float:
    name = s.get_inputs()[0].name
    for b in range(0, 640, batch):
        s.run(None, {name: images[b : b + batch]})
    results = []
    for _ in range(rounds):
        start = time.perf_counter()
        for b in range(0, len(images), batch):
            s.run(None, {name: images[b : b + batch]})
        results.append(len(images) / (time.perf_counter() - start))
    return statistics.median(results)


with tempfile.TemporaryDirectory() as tmp:
    paths = {"reference": Path(tmp) / "reference.onnx", "compact": Path(tmp) / "compact.onnx"}
    export(RunConfig().model, paths["reference"])
    export(recipe("fast").model, paths["compact"])
    for name, path in paths.items():
        ops = collections.Counter(node.op_type for node in onnx.load(str(path)).graph.node)
        print(f"{name}: {dict(ops)}")
    settings = {
        "default": {},
        "2 threads": {"threads": 2},
        "1 thread": {"threads": 1},
        "no spinning": {"spin": False},
        "extended optimisation": {"level": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED},
    }
    print(f"onnxruntime {ort.__version__}, images/s at batch 64 (median of 5 passes over 10,000 images)")
    for label, kwargs in settings.items():
        ref = rate(session(paths["reference"], **kwargs))
        small = rate(session(paths["compact"], **kwargs))
        print(f"{label:>22}: reference {ref:>8,.0f}  compact {small:>8,.0f}  ratio {small / ref:5.2f}x")
    s = session(paths["compact"])
    name = s.get_inputs()[0].name
    one = images[:1]
    for _ in range(50):
        s.run(None, {name: one})
    start = time.perf_counter()
    for _ in range(2000):
        s.run(None, {name: one})
    print(f"compact, one image per call: {(time.perf_counter() - start) / 2000 * 1e6:.0f} us a call")
