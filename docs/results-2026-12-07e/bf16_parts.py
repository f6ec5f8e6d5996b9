"""Time each of test_bf16_and_compiled's three runs (fp32, bf16 autocast, torch.compile) for a model and seed.

Usage: python docs/results-2026-12-07e/bf16_parts.py [ARCH] [SEED] [TRAIN_SIZE]  (defaults: reference 0 2000)
"""

import sys
import tempfile
import time
from pathlib import Path

from digitlab.config import DataConfig, RunConfig, TrainConfig, override
from digitlab.datasets import data_root
from digitlab.train import train

arch = sys.argv[1] if len(sys.argv) > 1 else "reference"
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
train_size = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
config = RunConfig(  # the test's small_config, 2 epochs
    data=DataConfig(val_size=200, train_size=train_size, data_dir=str(data_root() / "mnist")),
    train=TrainConfig(epochs=2, batch_size=64, seed=seed),
)
config = override(config, {"model.arch": arch})
runs = {"fp32": {"train.precision": "fp32"}, "bf16": {"train.precision": "bf16"},
        "compiled": {"train.compile": True, "train.precision": "fp32"}}  # fmt: skip
with tempfile.TemporaryDirectory() as tmp:
    for name, fields in runs.items():
        start = time.perf_counter()
        metrics = train(override(config, fields), out=Path(tmp) / name, log=lambda *_: None)
        seconds = time.perf_counter() - start
        print(f"{arch} seed {seed} {name}: {seconds:.1f} s, test {metrics['test']['accuracy']:.4f}", flush=True)
