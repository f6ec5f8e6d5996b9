"""How close the reference CNN's inference and training come to this CPU's fp32 ceiling, and what that leaves for a
ratio against the PyTorch peer, with every figure of a round taken within seconds of the others (the host's speed
drifts by 1.5x within minutes, so separate runs cannot be divided). From the repo root (2026-12-07, third session):

    python docs/results-2026-12-07c/ceiling_probe.py [--rounds 8]

Each round, one after the other: a 2048 x 2048 fp32 matrix product (the ceiling, GFLOP/s); digitlab's ONNX Runtime
graph (BatchNorm folded) over the 10,000 test images at batch 64; the PyTorch peer's own model and inference loop
(`../shared/peers/torch_example.py`'s nn.Sequential, NCHW, eval, no_grad, batch 64; random weights: the speed does
not depend on them); digitlab's training step at batch 64 (augmentation, forward, loss, backward, fused Adam; 30
steps). Forward cost 20.3 MFLOP an image, training 3 x 20.3 (bench_throughput.py). Prints a row per round, the
medians, and one JSON object.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_throughput import matmul_peak, onnx_engine, with_batch  # noqa: E402
from common import machine  # noqa: E402
from naive_epoch import reference_cnn  # noqa: E402

from digitlab.augment import augment_batch, make_generator  # noqa: E402
from digitlab.config import RunConfig  # noqa: E402
from digitlab.datasets import load_split  # noqa: E402
from digitlab.models import build_model  # noqa: E402
from digitlab.state import build_optimizer  # noqa: E402
from digitlab.train import train_step  # noqa: E402

FORWARD_FLOP = 20.3e6
parser = argparse.ArgumentParser()
parser.add_argument("--rounds", type=int, default=8)
args = parser.parse_args()

torch.manual_seed(0)
test_images = torch.from_numpy(load_split("mnist", "test")[0]).unsqueeze(1)  # (10000, 1, 28, 28) uint8
train_images, train_labels = (torch.from_numpy(a) for a in load_split("mnist", "train"))
train_images = train_images.unsqueeze(1)

peer = reference_cnn().eval()  # the PyTorch peer's model, as the peers and naive_epoch.py write it
peer_images = (test_images.float() / 255 - 0.1307) / 0.3081  # the peer feeds normalised images

config = with_batch(RunConfig(), 64)
model = build_model(config.model).eval()
tmp = tempfile.TemporaryDirectory()
engine = onnx_engine(model, Path(tmp.name) / "m.onnx")

trained = build_model(config.model).to(memory_format=torch.channels_last).train()
optimizer = build_optimizer(trained, config.train)
generator = make_generator(0, "cpu")
step_index = 0


def onnx_pass() -> float:
    start = time.perf_counter()
    for b in test_images.split(64):
        engine.predict_proba(b)
    return len(test_images) / (time.perf_counter() - start)


def peer_pass() -> float:
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(peer_images), 64):
            peer(peer_images[i : i + 64]).argmax(1)
    return len(peer_images) / (time.perf_counter() - start)


def train_steps(count: int = 30) -> float:
    global step_index
    start = time.perf_counter()
    for _ in range(count):
        index = torch.arange(step_index * 64, (step_index + 1) * 64) % len(train_images)
        x = augment_batch(train_images[index].float(), config.augment, generator)
        train_step(trained, optimizer, x, train_labels[index], config.train.label_smoothing, None)
        step_index += 1
    return count * 64 / (time.perf_counter() - start)


onnx_pass(), peer_pass(), train_steps(10)  # warm-up: one whole pass each
rows = []
print(
    "round | matmul GFLOP/s | ONNX img/s (GFLOP/s, of peak) | peer img/s (GFLOP/s, of peak) | ONNX / peer | "
    "train img/s (of peak)"
)
for r in range(args.rounds):
    peak = matmul_peak(torch.device("cpu"), torch.float32)
    onnx, peer_rate, train = onnx_pass(), peer_pass(), train_steps()
    row = {"peak": peak, "onnx": onnx, "peer": peer_rate, "train": train}
    rows.append(row)
    print(
        f"{r} | {peak / 1e9:.1f} | {onnx:,.0f} ({onnx * FORWARD_FLOP / 1e9:.0f}, {onnx * FORWARD_FLOP / peak:.0%}) | "
        f"{peer_rate:,.0f} ({peer_rate * FORWARD_FLOP / 1e9:.0f}, {peer_rate * FORWARD_FLOP / peak:.0%}) | "
        f"{onnx / peer_rate:.2f}x | {train:,.0f} ({train * 3 * FORWARD_FLOP / peak:.0%})",
        flush=True,
    )


def median(key) -> float:
    return statistics.median(key(row) for row in rows)


summary = {
    "onnx_share_of_peak": median(lambda r: r["onnx"] * FORWARD_FLOP / r["peak"]),
    "peer_share_of_peak": median(lambda r: r["peer"] * FORWARD_FLOP / r["peak"]),
    "onnx_over_peer": median(lambda r: r["onnx"] / r["peer"]),
    "train_share_of_peak": median(lambda r: r["train"] * 3 * FORWARD_FLOP / r["peak"]),
}
print("medians: " + ", ".join(f"{k} {v:.2f}" for k, v in summary.items()))
print(json.dumps({"machine": machine(), "rounds": rows, "medians": summary}))
