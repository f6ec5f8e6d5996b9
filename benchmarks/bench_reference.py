"""Benchmark the main job as a user runs it: `digitlab train` with its defaults, then a Kaggle submission.

Measures, on this machine:
  * `digitlab train` wall time (data load included), training images/s and epoch time, and the test accuracy of the
    model that validation chose (the test set chooses nothing);
  * `digitlab predict` on the 28,000-row Kaggle-format test.csv, end to end (read, predict, write): wall time of the
    whole command and of each part.
Prints a table and one JSON object (also written to benchmarks/out/bench_reference.json).

    python benchmarks/bench_reference.py                 # train with defaults (about 12 minutes on 2 cores)
    python benchmarks/bench_reference.py --run RUN_DIR   # reuse a finished run, time only the prediction
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import datetime
from pathlib import Path

from common import OUT, digitlab, machine, write_result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", help="an existing run folder: skip training")
    parser.add_argument("--train-args", default="", help="extra flags for digitlab train, e.g. '--epochs 5'")
    args = parser.parse_args()
    result = {"machine": machine()}
    digitlab("data", "fetch")
    if args.run:
        run = Path(args.run)
    else:
        run = OUT / f"run-{datetime.now():%Y%m%d-%H%M%S}"
        seconds, _ = digitlab("train", "--out", str(run), *args.train_args.split())
        result["train_wall_s"] = seconds
        result["train_args"] = args.train_args
    metrics = json.loads((run / "metrics.json").read_text())
    result["train"] = {
        k: metrics[k]
        for k in (
            "best_epoch",
            "val_accuracy",
            "train_images_per_s_median",
            "epoch_seconds_median",
            "train_seconds_total",
        )
    }
    result["test_accuracy"] = metrics["test"]["accuracy"]
    with tempfile.TemporaryDirectory() as tmp:
        digitlab("data", "kaggle-csv", "--out", tmp)
        walls = []
        for _ in range(3):
            wall, stdout = digitlab("predict", str(run), "--input", f"{tmp}/test.csv", "--out", f"{tmp}/sub.csv")
            walls.append(wall)
        _, score = digitlab("data", "score", f"{tmp}/sub.csv", f"{tmp}/answers.csv")
    result["predict_28k"] = {
        "wall_s_median": sorted(walls)[1],
        "wall_s_all": walls,
        "last_run": stdout.strip(),
        "score": score.strip(),
    }
    write_result("bench_reference", result)

    t = result["train"]
    rows = [
        (
            "machine",
            f"{result['machine']['cpu']}, {result['machine']['cores']} cores, "
            f"torch {result['machine']['torch']} ({result['machine']['torch_threads']} threads)",
        ),
        ("train wall time (incl. data load)", f"{result.get('train_wall_s', float('nan')):.0f} s"),
        ("training images/s (median epoch)", f"{t['train_images_per_s_median']:,.0f}"),
        ("epoch time (median)", f"{t['epoch_seconds_median']:.1f} s"),
        ("best epoch (by validation)", str(t["best_epoch"])),
        ("validation accuracy", f"{t['val_accuracy']:.2%}"),
        ("test accuracy (MNIST 10k)", f"{result['test_accuracy']:.2%}"),
        ("predict 28,000-row test.csv (wall)", f"{result['predict_28k']['wall_s_median']:.2f} s"),
        ("  of which", result["predict_28k"]["last_run"]),
    ]
    width = max(len(r[0]) for r in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
