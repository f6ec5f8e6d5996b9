"""Probe (2026-12-04, the AMX Xeon): int8 settings for the reference CNN, chosen on its validation split only.

`export --int8` (min-max ranges over 1,000 training images, every convolution and matrix product in int8) cost the
reference CNN trained by `digitlab train` 0.06 points of test accuracy. Candidates: the same with the two linear
layers kept in fp32; percentile (99.999 %) and entropy calibration instead of min-max. For each: validation
accuracy against fp32's, predictions changed on the validation split, and images/s at batch 64. The test set is not
read here.

    .venv/bin/python docs/results-2026-12-04d/int8_calibration_probe.py benchmarks/out/reference-default
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

from digitlab.checkpoint import checkpoint_config
from digitlab.data import load_train_val
from digitlab.export import CalibrationImages, onnx_graph, quiet_logger

run = Path(sys.argv[1])
config = checkpoint_config(run / "model.safetensors")
train, val = load_train_val(config.data, config.train.seed)
calibration = train.images[:1000].numpy().astype(np.float32)
images, labels = val.images.numpy().astype(np.float32), val.labels.numpy()


def rate(session, batch: int = 64, rounds: int = 5) -> float:
    batches = [images[i : i + batch] for i in range(0, len(images), batch)]
    times = []
    for _ in range(rounds + 1):
        start = time.perf_counter()
        for b in batches:
            session.run(None, {"pixels": b})
        times.append(time.perf_counter() - start)
    return len(images) / statistics.median(times[1:])


def predictions(session) -> np.ndarray:
    return np.concatenate([session.run(None, {"pixels": images[i : i + 256]})[0] for i in range(0, len(images), 256)])


with tempfile.TemporaryDirectory() as tmp:
    fp32 = Path(tmp) / "fp32.onnx"
    fp32.write_bytes(onnx_graph(run / "model.safetensors")[0])
    linear = [n.name for n in onnx.load(fp32).graph.node if n.op_type == "Gemm"]
    candidates = {
        "min-max, all (export --int8)": {},
        "min-max, linear layers fp32": {"nodes_to_exclude": linear},
        "percentile 99.999": {"calibrate_method": CalibrationMethod.Percentile},
        "entropy": {"calibrate_method": CalibrationMethod.Entropy},
    }
    base = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    reference = predictions(base).argmax(1)
    print(f"validation split: {len(images):,} images; fp32 accuracy {(reference == labels).mean():.2%}, "
          f"{rate(base):,.0f} images/s at batch 64")  # fmt: skip
    print("| int8 setting | validation accuracy | changed predictions | images/s, batch 64 |\n|---|---|---|---|")
    for name, options in candidates.items():
        out = Path(tmp) / "int8.onnx"
        with quiet_logger(""):
            quantize_static(str(fp32), str(out), CalibrationImages(calibration), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            **options)  # fmt: skip
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        predicted = predictions(session).argmax(1)
        print(f"| {name} | {(predicted == labels).mean():.2%} | {(predicted != reference).sum()} | "
              f"{rate(session):,.0f} |", flush=True)  # fmt: skip
