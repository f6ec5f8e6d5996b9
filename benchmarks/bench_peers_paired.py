"""digitlab against the peer programs in paired rounds: each round runs every peer for a short epoch and times
digitlab's batch-64 training step and ONNX Runtime inference right beside it, so that each ratio divides figures taken
within a minute or two of each other. On hosts whose speed drifts by 1.5x within minutes (a Zen 3 EPYC, 2026-12-07)
the ratios of `run_peers.sh` followed by `bench_throughput.py --peers`, 10-20 minutes apart, said more about the
host's phase than about the programs.

A round: the peers and digitlab one after the other, the order reversed every other round so that a steady drift
favours neither; a peer runs its own program (`../shared/peers`, copied by `run_peers.sh`, in its own venv) for one
epoch of --steps steps and reports, as in its full runs, its training rate after 50 warm-up steps and its warm
batch-64 inference pass over the 10,000 test images; digitlab's figures are bench_throughput.py's (the real training
step with augmentation, median of 3 passes of 60 steps; one untimed then one timed ONNX Runtime pass), and a matrix
product's GFLOP/s says which phase the host was in. Reported: every round's ratios to each peer and to the faster
peer of that round, and their medians. First `INSTALL_ONLY=1 bash benchmarks/run_peers.sh` (the venvs and data).

    python benchmarks/bench_peers_paired.py [--rounds 4] [--steps 250] [--peers torch,keras]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from bench_throughput import matmul_peak, onnx_engine, onnx_rate, train_rate, with_batch
from common import OUT, machine, write_result

from digitlab.config import RunConfig
from digitlab.datasets import load_split
from digitlab.models import build_model

PEERS = OUT / "peers"
PEER_PROGRAMS = {"torch": ("/tmp/venv-torch", "torch_example.py"), "keras": ("/tmp/venv-keras", "keras_seed.py")}


def run_peer(name: str, steps: int) -> dict:
    """One short epoch of a peer program: its steady training rate and warm batch-64 inference rate (images/s)."""
    venv, program = PEER_PROGRAMS[name]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [f"{venv}/bin/python", program, "--epochs", "1", "--steps-per-epoch", str(steps)]
        command += ["--aug-probe-batches", "0", "--out", str(out)]
        done = subprocess.run(command, cwd=PEERS, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"peer {name} failed ({' '.join(command)}):\n{done.stderr[-2000:]}")
        result = json.loads(out.read_text())
    return {
        "train": result["epochs"][0]["img_per_s_after_warmup"],
        "inference": result["inference"]["bs64"]["img_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=250, help="each peer's training steps a round (50 warm up)")
    parser.add_argument("--peers", default="torch,keras")
    args = parser.parse_args()
    peers = args.peers.split(",")
    missing = [p for p in peers if not Path(PEER_PROGRAMS[p][0], "bin/python").exists()]
    if missing or not (PEERS / "torch_example.py").exists():
        raise SystemExit(
            f"no peer venvs/programs for {missing or peers}: run INSTALL_ONLY=1 bash benchmarks/run_peers.sh"
        )

    cpu = torch.device("cpu")
    train_images, train_labels = load_split("mnist", "train")
    images = torch.from_numpy(train_images).unsqueeze(1)
    labels = torch.from_numpy(train_labels)
    test_images = torch.from_numpy(load_split("mnist", "test")[0]).unsqueeze(1)
    tmp = tempfile.TemporaryDirectory()
    engine = onnx_engine(build_model(RunConfig().model), Path(tmp.name) / "m.onnx")  # random weights: speed alone

    def ours() -> dict:
        return {
            "peak_gflops": matmul_peak(cpu, torch.float32) / 1e9,
            "train": train_rate(images, labels, with_batch(RunConfig(), 64), cpu),
            "inference": onnx_rate(engine, test_images),
        }

    rounds = []
    print(
        "| round | order | matmul GFLOP/s | digitlab train / infer | "
        + " | ".join(f"{p} train / infer | / {p}" for p in peers)
        + " | / faster peer |"
    )
    print("|---" * (5 + 2 * len(peers)) + "|")
    for r in range(args.rounds):
        started = time.strftime("%H:%M:%S", time.gmtime())
        digitlab_first = r % 2 == 1
        row = {"started_utc": started, "digitlab_first": digitlab_first}
        if digitlab_first:
            row["digitlab"] = ours()
        row["peers"] = {p: run_peer(p, args.steps) for p in peers}
        if not digitlab_first:
            row["digitlab"] = ours()
        d = row["digitlab"]
        row["ratios"] = {
            p: {"train": d["train"] / v["train"], "inference": d["inference"] / v["inference"]}
            for p, v in row["peers"].items()
        }
        row["faster_peer_ratio"] = {k: d[k] / max(v[k] for v in row["peers"].values()) for k in ("train", "inference")}
        rounds.append(row)
        cells = " | ".join(
            f"{v['train']:,.0f} / {v['inference']:,.0f} | {row['ratios'][p]['train']:.2f}x / "
            f"{row['ratios'][p]['inference']:.2f}x"
            for p, v in row["peers"].items()
        )
        print(
            f"| {r} ({started}) | {'digitlab first' if digitlab_first else 'peers first'} | {d['peak_gflops']:.0f} | "
            f"{d['train']:,.0f} / {d['inference']:,.0f} | {cells} | {row['faster_peer_ratio']['train']:.2f}x / "
            f"{row['faster_peer_ratio']['inference']:.2f}x |",
            flush=True,
        )
    medians = {k: statistics.median(row["faster_peer_ratio"][k] for row in rounds) for k in ("train", "inference")}
    wins = {
        k: sum(row["faster_peer_ratio"][k] >= target for row in rounds)
        for k, target in (("train", 1.5), ("inference", 1.9))
    }
    print(
        f"\nmedian over {len(rounds)} rounds, against the faster peer of each round: training {medians['train']:.2f}x "
        f"(>= 1.5x in {wins['train']} of {len(rounds)}), inference {medians['inference']:.2f}x (>= 1.9x in "
        f"{wins['inference']} of {len(rounds)})"
    )
    result = {"machine": machine(), "steps": args.steps, "rounds": rounds, "median_faster_peer_ratio": medians}
    write_result("bench_peers_paired", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
