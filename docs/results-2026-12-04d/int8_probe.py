"""Probe (2026-12-04, the AMX Xeon): images/s at batch 64 and 256 (over the 10,000 test images) for the reference
CNN, the distilled student's architecture (the fast recipe's compact CNN, width 16) and the stacked CNN (width 48), each
in ONNX Runtime fp32 (as `digitlab export` writes it: BatchNorm folded), ONNX Runtime int8 (static QDQ quantisation,
per-channel weights, calibrated on 1,000 training images), PyTorch fp32 and PyTorch under bf16 autocast. Speed
only: the weights are the untrained initial ones (a trained model's speed is the same).

    .venv/bin/python docs/results-2026-12-04d/int8_probe.py
"""

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from digitlab.config import ModelConfig
from digitlab.datasets import load_split
from digitlab.export import WithSoftmax, fold_batchnorm
from digitlab.models import build_model

torch.set_num_threads(2)
test = load_split("mnist", "test")[0][:, None].astype(np.float32)  # (10000, 1, 28, 28)
calibration = load_split("mnist", "train")[0][:1000, None].astype(np.float32)


class Batches(CalibrationDataReader):
    def __init__(self):
        self.items = iter([{"pixels": calibration[i : i + 100]} for i in range(0, len(calibration), 100)])

    def get_next(self):
        return next(self.items, None)


def export(model, path: Path) -> None:
    program = torch.onnx.export(WithSoftmax(fold_batchnorm(model)), (torch.zeros(2, 1, 28, 28),),
                                input_names=["pixels"], dynamic_shapes={"pixels": {0: torch.export.Dim("batch")}},
                                dynamo=True, verbose=False)  # fmt: skip
    program.save(str(path))


def rate(predict, batch: int, rounds: int = 5) -> float:
    batches = [test[i : i + batch] for i in range(0, len(test), batch)]
    for b in batches[:3]:
        predict(b)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for b in batches:
            predict(b)
        times.append(time.perf_counter() - start)
    return len(test) / statistics.median(times)


def engines(model, folder: Path) -> dict:
    export(model, folder / "fp32.onnx")
    quantize_static(str(folder / "fp32.onnx"), str(folder / "int8.onnx"), Batches(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip
    sessions = {k: ort.InferenceSession(str(folder / f"{k}.onnx"), providers=["CPUExecutionProvider"])
                for k in ("fp32", "int8")}  # fmt: skip

    def onnx(kind):
        return lambda x: sessions[kind].run(None, {"pixels": x})[0]

    def torch_(bf16):
        def predict(x):
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return model(torch.from_numpy(x).contiguous(memory_format=torch.channels_last))

        return predict

    return {"onnx fp32": onnx("fp32"), "onnx int8": onnx("int8"), "torch fp32": torch_(False),
            "torch bf16": torch_(True)}  # fmt: skip


models = {"reference": ModelConfig(), "compact16": ModelConfig(arch="compact", width=16, dropout=0.0),
          "vgg48": ModelConfig(arch="vgg", width=48, dropout=0.1)}  # fmt: skip
print(f"{'model':10s} {'engine':11s} {'batch 64':>10s} {'batch 256':>10s}   (images/s)")
with tempfile.TemporaryDirectory() as tmp:
    for name, config in models.items():
        torch.manual_seed(0)
        model = build_model(config).eval().to(memory_format=torch.channels_last)
        folder = Path(tmp) / name
        folder.mkdir()
        for engine, predict in engines(model, folder).items():
            print(f"{name:10s} {engine:11s} {rate(predict, 64):10,.0f} {rate(predict, 256):10,.0f}", flush=True)
