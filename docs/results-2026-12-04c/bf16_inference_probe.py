"""Is bf16 inference in PyTorch faster than fp32 ONNX Runtime on a CPU with AVX512-BF16? A probe before any change
to the engines: images/s at batch 64 (median of 5 passes over the 10,000 test images, after a warm-up) and the test
predictions that change, for each model given. Run from the repository root:

    python docs/results-2026-12-04c/bf16_inference_probe.py benchmarks/out/reference-e1 RUN...
"""

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from digitlab.datasets import load_split
from digitlab.engines import OnnxEngine, TorchEngine
from digitlab.export import export_onnx

images_u8, labels = load_split("mnist", "test")
images = torch.from_numpy(images_u8).unsqueeze(1).float()  # (N, 1, 28, 28), 0..255
labels = np.asarray(labels)
batches = [images[i : i + 64] for i in range(0, len(images), 64)]


def images_per_s(predict) -> float:
    for b in batches[:5]:
        predict(b)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for b in batches:
            predict(b)
        times.append(time.perf_counter() - start)
    return len(images) / statistics.median(times)


def torch_predict(model, dtype, channels_last):
    def predict(x):
        x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            return model(x).float().softmax(1).numpy()

    return predict


print("| model | variant | images/s, batch 64 | / ONNX Runtime fp32 | test accuracy | predictions changed |")
print("|---|---|---|---|---|---|")
for run in sys.argv[1:]:
    onnx_path = Path(export_onnx(run, Path("/tmp") / f"probe-{Path(run).name}.onnx", verify=False)["out"])
    onnx = OnnxEngine(onnx_path).predict_proba
    reference = np.concatenate([onnx(b) for b in batches]).argmax(1)
    variants = {"ONNX Runtime fp32": onnx}
    for dtype in ("fp32", "bf16"):
        for channels_last in (False, True):
            model = TorchEngine(Path(run) / "model.safetensors").model.eval()  # a fresh one: .to() works in place
            model = model.to(memory_format=torch.channels_last) if channels_last else model
            name = f"PyTorch {dtype}" + (", channels-last" if channels_last else "")
            variants[name] = torch_predict(model, dtype, channels_last)
    base = None
    for name, predict in variants.items():
        rate = images_per_s(predict)
        base = base or rate
        predicted = np.concatenate([predict(b) for b in batches]).argmax(1)
        accuracy = (predicted == labels).mean() * 100
        changed = int((predicted != reference).sum())
        print(f"| {Path(run).name} | {name} | {rate:,.0f} | {rate / base:.2f}x | {accuracy:.2f} % | {changed} |")
