"""Inference throughput of the engines, PyTorch (fp32, bf16 autocast) and ONNX Runtime (fp32, int8), on MNIST test
images.

Images/s at batch 1, 64 and 10,000 (one call with all 10,000 images; each engine splits it into its own chunks),
median of 5 timed repeats after one warm-up. Prints a table and one JSON object (also benchmarks/out/...json).

    python benchmarks/bench_inference.py RUN_DIR
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch
from common import OUT, machine, write_result

from digitlab.datasets import load_split
from digitlab.engines import OnnxEngine, TorchEngine
from digitlab.export import export_onnx


def rate(engine, images: torch.Tensor, batch: int, repeats: int = 5) -> float:
    count = min(len(images), 2000) if batch == 1 else len(images)
    batches = [images[i : i + batch] for i in range(0, count, batch)]
    for b in batches[:3]:
        engine.predict_proba(b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for b in batches:
            engine.predict_proba(b)
        times.append(time.perf_counter() - start)
    return count / statistics.median(times)


def main(run: str) -> None:
    images = torch.from_numpy(load_split("mnist", "test")[0]).unsqueeze(1)
    onnx_path = Path(export_onnx(run, Path(OUT) / "bench_model.onnx", verify=False, force=True)["out"])  # its own file
    int8_path = Path(export_onnx(run, Path(OUT) / "bench_model.int8.onnx", verify=False, force=True, int8=True)["out"])
    checkpoint = Path(run) / "model.safetensors"
    engines = {"torch": TorchEngine(checkpoint), "torch-bf16": TorchEngine(checkpoint, bf16=True),
               "onnx": OnnxEngine(onnx_path), "onnx-int8": OnnxEngine(int8_path)}  # fmt: skip
    result = {"machine": machine(), "run": run, "images_per_s": {}}
    for name, engine in engines.items():
        result["images_per_s"][name] = {str(b): rate(engine, images, b) for b in (1, 64, 10_000)}
    write_result("bench_inference", result)
    header = ("batch", "torch img/s", "bf16 img/s", "onnx img/s", "int8 img/s", "onnx/torch", "bf16/onnx", "int8/onnx")
    print(f"{header[0]:>8} " + " ".join(f"{h:>12}" for h in header[1:]))
    for b in ("1", "64", "10000"):
        t, h, o, q = (result["images_per_s"][name][b] for name in ("torch", "torch-bf16", "onnx", "onnx-int8"))
        print(f"{b:>8} {t:>12,.0f} {h:>12,.0f} {o:>12,.0f} {q:>12,.0f} {o / t:>12.2f} {h / o:>12.2f} {q / o:>12.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
