"""Training and inference throughput of the reference CNN and of each recipe's model, against the device's peak
and, with --peers, against the peer programs' results from the same session.

Training: the real training step of digitlab.train (augmentation on the device, forward, loss, backward, optimizer),
images/s at batch 64 and 256 on MNIST training images, median of 3 timed passes of TIMED_STEPS steps after warm-up;
then each recipe's own model, batch size, augmentation switch and optimizer.
Inference: images/s of PyTorch at batch 64 and 256 and of ONNX Runtime at batch 64 (the exported graph, BatchNorm
folded; CPU only), over 10,000 images, for the reference CNN and the fast recipe's compact CNN: one untimed pass over
them, then one timed pass, as the peers time theirs (until 2026-12-06 five batches warmed up instead, and the timed
pass read 11-26 % low on a Zen 4 EPYC).
Peak: a large fp32 (and bf16) matrix multiply; the reference CNN costs about 61 MFLOP per training image
(3 x 20.3 MFLOP forward), so images/s x 61e6 / peak says how much of the device training uses.
Prints the machine, versions and thread settings, a table, and one JSON object (benchmarks/out/bench_throughput.json).

    python benchmarks/bench_throughput.py [--device cpu|cuda] [--compile] [--bf16] [--peers DIR_WITH_results_*.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import OUT, machine

from digitlab.augment import augment_batch, make_generator
from digitlab.config import RECIPE_NAMES, RunConfig, recipe
from digitlab.datasets import load_split
from digitlab.models import build_model

FLOP_PER_TRAIN_IMAGE = 3 * 20.3e6  # forward: 0.39 + 10.6 + 3.69 + 4.72 + 1.05 (+ small) MFLOP, backward about 2x
TIMED_STEPS = 60


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device, dtype) -> float:
    n = 2048 if device.type == "cpu" else 8192
    if device.type == "cpu" and dtype == torch.bfloat16:
        n = 512  # CPUs without native bf16 run it ~600x slower than fp32: a 2048 product would take minutes
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    repeats = 5 if device.type == "cpu" else 50
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def train_rate(images, labels, config: RunConfig, device, compiled: bool = False, bf16: bool = False) -> float:
    from digitlab.state import build_optimizer, keep_freed_memory
    from digitlab.train import train_step

    keep_freed_memory()  # as open_run does for every training run
    torch.manual_seed(0)
    batch = config.train.batch_size
    model = build_model(config.model).to(device, memory_format=torch.channels_last)
    forward = torch.compile(model) if compiled else model
    optimizer = build_optimizer(model, config.train)
    generator = make_generator(0, device)
    autocast = torch.bfloat16 if bf16 else None

    def steps(count: int, offset: int):
        for i in range(count):
            index = torch.arange((offset + i) * batch, (offset + i + 1) * batch, device=device) % len(images)
            x = augment_batch(images[index].float(), config.augment, generator)
            train_step(forward, optimizer, x, labels[index], config.train.label_smoothing, autocast)
        sync(device)

    steps(10, 0)
    rates = []
    for r in range(3):
        start = time.perf_counter()
        steps(TIMED_STEPS, 10 + r * TIMED_STEPS)
        rates.append(TIMED_STEPS * batch / (time.perf_counter() - start))
    return statistics.median(rates)


def inference_rates(images, device, model_config=RunConfig().model) -> dict:
    model = build_model(model_config).to(device, memory_format=torch.channels_last).eval()
    x = images[:10_000].float().contiguous(memory_format=torch.channels_last)
    result = {}
    with torch.inference_mode():
        for batch in (64, 256):
            for b in x.split(batch):  # one whole untimed pass first, as the peers make theirs ("bs64_first_call")
                model(b)
            sync(device)
            start = time.perf_counter()
            for b in x.split(batch):
                model(b)
            sync(device)
            result[f"torch_b{batch}"] = len(x) / (time.perf_counter() - start)
    if device.type == "cpu":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return result
        with tempfile.TemporaryDirectory() as tmp:
            engine = onnx_engine(model, Path(tmp) / "m.onnx")
            result["onnx_b64"] = onnx_rate(engine, images[:10_000].cpu())
    return result


def onnx_engine(model: torch.nn.Module, path: Path):
    """`model` exported as digitlab exports it (BatchNorm folded, raw pixels in, probabilities out) to `path`, in
    digitlab's ONNX Runtime engine."""
    from digitlab.engines import OnnxEngine
    from digitlab.export import WithSoftmax, fold_batchnorm

    graph = WithSoftmax(fold_batchnorm(model.cpu().to(memory_format=torch.contiguous_format).eval()))
    program = torch.onnx.export(
        graph,
        (torch.zeros(2, 1, 28, 28),),
        input_names=["pixels"],
        dynamic_shapes={"pixels": {0: torch.export.Dim("batch")}},
        dynamo=True,
    )
    program.save(str(path))
    return OnnxEngine(path)


def onnx_rate(engine, images: torch.Tensor) -> float:
    """Images/s of `engine` at batch 64 over `images`: one whole untimed pass, then the timed one."""
    for b in images.split(64):
        engine.predict_proba(b)
    start = time.perf_counter()
    for b in images.split(64):
        engine.predict_proba(b)
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="also time training with torch.compile (batch 64)")
    parser.add_argument("--bf16", action="store_true", help="also time training with bf16 autocast (--precision bf16)")
    parser.add_argument("--peers", help="folder with the peers' results_keras.json / results_torch.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    train_images, train_labels = load_split("mnist", "train")
    images = torch.from_numpy(train_images).unsqueeze(1).to(device)
    labels = torch.from_numpy(train_labels).to(device)
    result = {
        "machine": machine(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "peak_fp32_flops": matmul_peak(device, torch.float32),
        "peak_bf16_flops": matmul_peak(device, torch.bfloat16),
        "train_images_per_s": {
            str(b): train_rate(images, labels, with_batch(RunConfig(), b), device) for b in (64, 256)
        },
        "recipe_train_images_per_s": {
            name: train_rate(images, labels, recipe(name), device) for name in RECIPE_NAMES if name != "reference"
        },
        "inference_images_per_s": inference_rates(images, device),
        "recipe_inference_images_per_s": {"fast": inference_rates(images, device, recipe("fast").model)},
    }
    if args.compile:
        result["train_images_per_s_compiled"] = {
            "64": train_rate(images, labels, with_batch(RunConfig(), 64), device, compiled=True)
        }
    if args.bf16:  # the reference CNN at batch 64, and each recipe's model, with bf16 autocast
        result["train_images_per_s_bf16"] = {
            "64": train_rate(images, labels, with_batch(RunConfig(), 64), device, bf16=True),
            **{
                name: train_rate(images, labels, recipe(name), device, bf16=True) for name in ("fast", "best", "robust")
            },
        }
    for batch, rate in result["train_images_per_s"].items():
        result[f"train_b{batch}_share_of_fp32_peak"] = rate * FLOP_PER_TRAIN_IMAGE / result["peak_fp32_flops"]
    OUT.mkdir(exist_ok=True)
    print(
        f"device {result['device_name']}; matmul peak fp32 {result['peak_fp32_flops'] / 1e9:,.1f} GFLOP/s, "
        f"bf16 {result['peak_bf16_flops'] / 1e9:,.1f} GFLOP/s"
    )
    for batch, rate in result["train_images_per_s"].items():
        print(
            f"train, batch {batch:>3}, augmentation on: {rate:>9,.0f} images/s "
            f"({result[f'train_b{batch}_share_of_fp32_peak']:.0%} of the fp32 matmul peak)"
        )
    for batch, rate in result.get("train_images_per_s_compiled", {}).items():
        print(f"train, batch {batch:>3}, torch.compile: {rate:>9,.0f} images/s")
    for key, rate in result.get("train_images_per_s_bf16", {}).items():
        fp32 = result["train_images_per_s"].get(key) or result["recipe_train_images_per_s"][key]
        print(
            f"train, {'batch ' + key if key.isdigit() else 'recipe ' + key}, bf16 autocast: {rate:>9,.0f} images/s "
            f"({rate / fp32:.2f}x fp32)"
        )
    for name, rate in result["recipe_train_images_per_s"].items():
        c = recipe(name)
        print(
            f"train, recipe {name} ({c.model.arch}, batch {c.train.batch_size}, augmentation "
            f"{'on' if c.augment.enabled else 'off'}): {rate:>9,.0f} images/s"
        )
    for name, rate in result["inference_images_per_s"].items():
        print(f"inference {name}: {rate:>9,.0f} images/s")
    for name, rates in result["recipe_inference_images_per_s"].items():
        print(
            f"inference, recipe {name} ({recipe(name).model.arch}): "
            + ", ".join(f"{k} {v:,.0f}" for k, v in rates.items())
            + " images/s"
        )
    if args.peers:
        result["peers"] = peer_ratios(Path(args.peers), result)
        print(
            "\n| peer | peer train img/s, batch 64 | digitlab / peer | peer inference img/s, batch 64 | "
            "digitlab (ONNX Runtime) / peer |\n|---|---|---|---|---|"
        )
        for name, row in result["peers"].items():
            print(
                f"| {name} | {row['train']:,.0f} | {row['train_ratio']:.2f}x | {row['inference']:,.0f} | "
                f"{row['inference_ratio']:.2f}x |"
            )
    (OUT / f"bench_throughput_{device.type}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


def with_batch(config: RunConfig, batch: int) -> RunConfig:
    return dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=batch))


def peer_ratios(folder: Path, result: dict) -> dict:
    """The peers' steady training rate (epochs 2-3, after warm-up) and warm inference rate at batch 64, and
    digitlab's ratio to each."""
    ours_train = result["train_images_per_s"]["64"]
    ours_inference = result["inference_images_per_s"].get("onnx_b64", result["inference_images_per_s"]["torch_b64"])
    rows = {}
    for path in sorted(folder.glob("results_*.json")):
        peer = json.loads(path.read_text())
        train = statistics.median(e["img_per_s_after_warmup"] for e in peer["epochs"])
        inference = peer["inference"]["bs64"]["img_per_s"]
        rows[path.stem.removeprefix("results_")] = {
            "train": train,
            "train_ratio": ours_train / train,
            "inference": inference,
            "inference_ratio": ours_inference / inference,
        }
    return rows


if __name__ == "__main__":
    main()
