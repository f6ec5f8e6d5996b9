"""Probe (2026-12-06, seventh session): inference speed at batch 64 of the reference CNN and of the `student`
recipe's model on this CPU, in the engines digitlab has and in fp32 ones it lacks. Random weights (speed does not
depend on them). Every engine gets the graph digitlab exports or runs (BatchNorm folded, softmax on), the 10,000
MNIST test images in batches of 64, interleaved rounds (one untimed pass, then three timed ones per engine per
round), medians of all timed passes. The fp32 alternatives print their largest probability difference from ONNX
Runtime's fp32 on the first 1,024 images, so that an engine that changes numerics shows it.

    .venv/bin/python docs/results-2026-12-06g/engine_probe.py
"""

import copy
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from digitlab.config import recipe
from digitlab.datasets import load_split
from digitlab.export import WithSoftmax, fold_batchnorm
from digitlab.models import build_model

torch.set_num_threads(2)
images = load_split("mnist", "test")[0][:, None].astype(np.float32)  # (10000, 1, 28, 28)
tensor = torch.from_numpy(images)


def export(model: torch.nn.Module, path: Path) -> None:
    batch = {"pixels": {0: torch.export.Dim("batch")}}
    program = torch.onnx.export(model, (torch.zeros(2, 1, 28, 28),), input_names=["pixels"], dynamic_shapes=batch,
                                dynamo=True, verbose=False)  # fmt: skip
    program.save(str(path))


def onnx_runner(path: Path, **config: str):
    options = ort.SessionOptions()
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def torch_runner(model: torch.nn.Module, bf16: bool = False, channels_last: bool = True):
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = copy.deepcopy(model).to(memory_format=layout)  # .to changes a module in place

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model(torch.from_numpy(x).contiguous(memory_format=layout)).float().numpy()

    return run


def frozen_runner(model: torch.nn.Module):
    with torch.inference_mode():
        traced = torch.jit.trace(copy.deepcopy(model), torch.zeros(64, 1, 28, 28))
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return frozen(torch.from_numpy(x)).numpy()

    return run


def compiled_runner(model: torch.nn.Module):
    import torch._inductor.config as inductor

    inductor.freezing = True  # weights as constants: oneDNN prepacks them
    compiled = torch.compile(copy.deepcopy(model))
    start = time.perf_counter()
    with torch.inference_mode():
        for size in (64, len(images) % 64):  # the two batch sizes a pass uses
            compiled(torch.zeros(size, 1, 28, 28))
    print(f"  torch.compile warm-up (both batch sizes): {time.perf_counter() - start:.1f} s")

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return compiled(torch.from_numpy(x)).numpy()

    return run


def one_pass(run, batch: int = 64) -> float:
    start = time.perf_counter()
    for b in range(0, len(images), batch):
        run(images[b : b + batch])
    return len(images) / (time.perf_counter() - start)


torch.manual_seed(0)
graphs = {"reference": WithSoftmax(fold_batchnorm(build_model(recipe("reference").model).eval())).eval(),
          "student": WithSoftmax(fold_batchnorm(build_model(recipe("student").model).eval())).eval()}  # fmt: skip
with tempfile.TemporaryDirectory() as tmp:
    runners = {}
    for name, graph in graphs.items():
        path = Path(tmp) / f"{name}.onnx"
        export(graph, path)
        runners[f"{name} onnx"] = onnx_runner(path)
        if name == "reference":
            runners[f"{name} onnx, no spinning"] = onnx_runner(path, **{"session.intra_op.allow_spinning": "0"})
            runners[f"{name} torch"] = torch_runner(graph)
            runners[f"{name} torch nchw"] = torch_runner(graph, channels_last=False)
            runners[f"{name} torch-bf16"] = torch_runner(graph, bf16=True)
            runners[f"{name} jit freeze"] = frozen_runner(graph)
            runners[f"{name} compile freeze"] = compiled_runner(graph)
    oracle = runners["reference onnx"](images[:1024])
    for name, run in runners.items():
        if name.startswith("reference"):
            diff = np.abs(np.concatenate([run(images[i : i + 64]) for i in range(0, 1024, 64)]) - oracle).max()
            print(f"  {name}: largest probability difference from onnx fp32 {diff:.2e}")
    for run in runners.values():
        one_pass(run)
    rates = {name: [] for name in runners}
    for round_ in range(4):
        for name in list(runners) if round_ % 2 == 0 else list(runners)[::-1]:
            one_pass(runners[name])
            rates[name] += [one_pass(runners[name]) for _ in range(3)]
base = statistics.median(rates["reference onnx"])
print(f"{'engine, batch 64':<34}{'images/s':>10}{'/ reference onnx':>18}   passes")
for name, r in rates.items():
    m = statistics.median(r)
    print(f"{name:<34}{m:>10,.0f}{m / base:>17.2f}x   " + ", ".join(f"{x:,.0f}" for x in r))
