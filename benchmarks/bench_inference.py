"""Inference throughput of the two engines, PyTorch and ONNX Runtime, on MNIST test images.

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
    onnx_path = Path(export_onnx(run, Path(OUT) / "bench_model.onnx", verify=False)["out"])
    engines = {"torch": TorchEngine(Path(run) / "model.safetensors"), "onnx": OnnxEngine(onnx_path)}
    result = {"machine": machine(), "run": run, "images_per_s": {}}
    for name, engine in engines.items():
        result["images_per_s"][name] = {str(b): rate(engine, images, b) for b in (1, 64, 10_000)}
    write_result("bench_inference", result)
    print(f"{'batch':>8} {'torch img/s':>12} {'onnx img/s':>12} {'onnx/torch':>10}")
    for b in ("1", "64", "10000"):
        t, o = result["images_per_s"]["torch"][b], result["images_per_s"]["onnx"][b]
        print(f"{b:>8} {t:>12,.0f} {o:>12,.0f} {o / t:>10.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
