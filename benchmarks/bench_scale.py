"""Scale-out: a lab sequentially vs on local Ray with all cores, and one training on 1 vs 2 torchrun processes.

  * lab: `digitlab lab` with 5 configurations x 3 seeds (15 runs), once one run after another in one process (torch
    using every core), once with `--ray local` (one task per run, one CPU each, as many at a time as there are
    cores). Wall time of each whole command and the speed-up.
  * DDP: `digitlab train` in one process vs `torchrun --standalone --nproc_per_node 2` (gloo on the CPU, or NCCL
    when --device cuda), the same global batch; wall time, epoch time and test accuracy.
Prints the machine (with its core count), a table, and one JSON object (benchmarks/out/bench_scale.json).

    python benchmarks/bench_scale.py                        # defaults sized for a 2-core machine (~15 minutes)
    python benchmarks/bench_scale.py --train-size 5000 --epochs 5 --ddp-train-size 20000
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

from common import OUT, digitlab, machine, write_result


def timed_lab(args, extra: list[str], name: str) -> float:
    out = OUT / f"scale-lab-{name}"
    shutil.rmtree(out, ignore_errors=True)
    seconds, _ = digitlab("lab", "--repeats", "3", "--train-size", str(args.train_size), "--epochs",
                          str(args.epochs), "--out", str(out), *extra)  # fmt: skip
    print(f"  lab {name}: {seconds:.1f} s", flush=True)
    return seconds


def timed_train(args, processes: int) -> dict:
    out = OUT / f"scale-ddp-{processes}"
    shutil.rmtree(out, ignore_errors=True)
    flags = ["train", "--train-size", str(args.ddp_train_size), "--epochs", str(args.epochs), "--batch-size",
             str(128 // processes), "--out", str(out), "--device", args.device]  # fmt: skip
    if processes == 1:
        seconds, _ = digitlab(*flags)
    else:
        start = time.perf_counter()
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        threads = ["--threads", str(max(1, args.cores // processes))] if args.device == "cpu" else []
        subprocess.run(command + ["-m", "digitlab", *flags, *threads], check=True, capture_output=True)
        seconds = time.perf_counter() - start
    metrics = json.loads((out / "metrics.json").read_text())
    row = {"processes": processes, "wall_s": seconds, "epoch_s_median": metrics["epoch_seconds_median"],
           "test_accuracy": metrics["test"]["accuracy"]}  # fmt: skip
    print(f"  train, {processes} process(es): {seconds:.1f} s, test {row['test_accuracy']:.2%}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-size", type=int, default=2000, help="training images per lab run")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--ddp-train-size", type=int, default=10000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-lab", action="store_true")
    args = parser.parse_args()
    info = machine()
    args.cores = info["cores"] or 1
    result = {"machine": info, "settings": vars(args)}
    if not args.skip_lab:
        sequential = timed_lab(args, [], "sequential")
        on_ray = timed_lab(args, ["--ray", "local", "--ray-cpus", "1"], "ray")
        result["lab"] = {"runs": 15, "sequential_s": sequential, "ray_s": on_ray, "speedup": sequential / on_ray}
    result["ddp"] = [timed_train(args, 1), timed_train(args, 2)]
    result["ddp_speedup"] = result["ddp"][0]["wall_s"] / result["ddp"][1]["wall_s"]
    write_result("bench_scale", result)
    print(f"\nmachine: {info['cpu']}, {args.cores} cores, torch {info['torch']}, {info['date']}\n")
    print("| what | one process | scaled out | speed-up |\n|---|---|---|---|")
    if "lab" in result:
        lab = result["lab"]
        print(f"| lab, 5 configurations x 3 seeds ({args.train_size} images, {args.epochs} epochs) | "
              f"{lab['sequential_s']:.0f} s | {lab['ray_s']:.0f} s (Ray, {args.cores} tasks at a time) | "
              f"{lab['speedup']:.2f}x |")  # fmt: skip
    one, two = result["ddp"]
    print(f"| train ({args.ddp_train_size} images, {args.epochs} epochs, global batch 128) | {one['wall_s']:.0f} s, "
          f"test {one['test_accuracy']:.2%} | {two['wall_s']:.0f} s, test {two['test_accuracy']:.2%} (torchrun x2) "
          f"| {result['ddp_speedup']:.2f}x |")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
