"""Wall time from the start of `digitlab train` (process start, data load included) until the test accuracy of the
model that *validation* chose first reaches 99.0 / 99.5 / 99.7 %.

Two ways to measure, both honest (the test set is only looked at, never used to choose):
  * budgets (default, for short recipes): one complete `digitlab train --recipe R --epochs E` per epoch budget E,
    as a user would run it; its wall time and final test accuracy. The time to X % is the wall time of the shortest
    budget whose run reached X %. Every run is a full run with its own learning-rate schedule.
  * --traced RUN_DIR ... (for long recipes): run folders trained with `--trace-test`, whose history holds, after
    each epoch, the elapsed time since `train()` began (its test evaluations left out) and the test accuracy of the
    model validation had chosen so far. Interpreter start-up and imports are measured here and added.
The baseline, timed in the same run (before and after the budgets, the faster one kept): one epoch of the reference CNN
written the plain PyTorch way (benchmarks/naive_epoch.py: batch 64, Adam, no augmentation, data already in memory);
every wall time is also given as a ratio of that epoch.
Prints the machine, versions and thread settings, a table, and one JSON object
(benchmarks/out/bench_time_to_accuracy.json).

    python benchmarks/bench_time_to_accuracy.py --recipe fast --epochs 4,5 --seeds 0,1,2
    python benchmarks/bench_time_to_accuracy.py --traced benchmarks/out/best-ensemble/member-*
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import OUT, digitlab, machine, write_result

THRESHOLDS = (0.990, 0.995, 0.997)


def startup_seconds() -> float:
    """What a `digitlab train` process spends before train() starts: interpreter, torch and digitlab imports."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import digitlab.cli, digitlab.train"], check=True)
        times.append(time.perf_counter() - start)
    return sorted(times)[1]


def naive_epoch_seconds() -> float:
    r = subprocess.run([sys.executable, str(Path(__file__).parent / "naive_epoch.py")], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"naive_epoch.py failed:\n{r.stderr}")
    return json.loads(r.stdout)["naive_epoch_s"]


def budget_runs(recipe: str, epoch_budgets: list[int], seed: int) -> list[dict]:
    rows = []
    for epochs in epoch_budgets:
        run = OUT / f"tta-{recipe}-e{epochs}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
        seconds, _ = digitlab(
            "train", "--recipe", recipe, "--epochs", str(epochs), "--seed", str(seed), "--out", str(run)
        )
        metrics = json.loads((run / "metrics.json").read_text())
        rows.append(
            {
                "recipe": recipe,
                "epochs": epochs,
                "seed": seed,
                "wall_s": seconds,
                "test_accuracy": metrics["test"]["accuracy"],
                "val_accuracy": metrics["val_accuracy"],
                "run": str(run),
            }
        )
        print(f"  {recipe} {epochs} epochs: {seconds:6.1f} s, test {metrics['test']['accuracy']:.2%}", flush=True)
    return rows


def traced_rows(run_dir: Path, startup: float) -> list[dict]:
    config = json.loads((run_dir / "config.json").read_text())["config"]
    history = json.loads((run_dir / "history.json").read_text())
    if "selected_test_accuracy" not in history[0]:
        sys.exit(f"{run_dir} was not trained with --trace-test")
    return [
        {
            "recipe": config.get("recipe", "reference"),
            "epochs": h["epoch"],
            "wall_s": startup + h["elapsed_s"],
            "test_accuracy": h["selected_test_accuracy"],
            "run": str(run_dir),
        }
        for h in history
    ]


def first_reaching(rows: list[dict], threshold: float) -> dict | None:
    hits = [r for r in rows if r["test_accuracy"] >= threshold]
    return min(hits, key=lambda r: r["wall_s"]) if hits else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--epochs", default="2,3,4,5,6", help="comma-separated epoch budgets")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds: one series each")
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive PyTorch epoch")
    parser.add_argument("--traced", nargs="+", help="run folders trained with --trace-test (no training here)")
    args = parser.parse_args()
    result = {"machine": machine(), "series": []}
    digitlab("data", "fetch")
    baseline = [] if args.no_baseline else [naive_epoch_seconds()]
    if args.traced:
        startup = startup_seconds()
        result["startup_s"] = startup
        series = [(Path(r).name, traced_rows(Path(r), startup)) for r in args.traced]
    else:
        budgets = [int(e) for e in args.epochs.split(",")]
        series = [
            (f"{args.recipe}, seed {seed}, one run per budget", budget_runs(args.recipe, budgets, seed))
            for seed in (int(s) for s in args.seeds.split(","))
        ]
    if baseline:
        baseline.append(naive_epoch_seconds())
    naive = min(baseline) if baseline else None  # the faster epoch: the stricter baseline
    result["naive_epoch_s"] = baseline
    print(f"\nmachine: {result['machine']}")
    if naive:
        print(
            f"baseline: one naive PyTorch epoch of the reference CNN, {' and '.join(f'{b:.1f}' for b in baseline)} s"
            f" (kept: {naive:.1f} s)"
        )
        for _, rows in series:
            for row in rows:
                row["of_naive_epoch"] = row["wall_s"] / naive
        print("| recipe, epochs, seed | wall time | of a naive epoch | test accuracy |\n|---|---|---|---|")
        for _, rows in series:
            for r in rows:
                print(
                    f"| {r['recipe']}, {r['epochs']}, {r.get('seed', '')} | {r['wall_s']:.1f} s | "
                    f"{r['of_naive_epoch']:.2f} | {r['test_accuracy']:.2%} |"
                )
    print("| series | " + " | ".join(f"time to {t:.1%}" for t in THRESHOLDS) + " | best test accuracy (time) |")
    print("|---|" + "---|" * (len(THRESHOLDS) + 1))
    for name, rows in series:
        hits = {f"{t:.3f}": first_reaching(rows, t) for t in THRESHOLDS}
        result["series"].append(
            {"name": name, "rows": rows, "time_to": {k: (h["wall_s"] if h else None) for k, h in hits.items()}}
        )
        top = max(rows, key=lambda r: r["test_accuracy"])
        cells = [f"{h['wall_s']:.1f} s ({h['epochs']} ep)" if h else "not reached" for h in hits.values()]
        print(f"| {name} | " + " | ".join(cells) + f" | {top['test_accuracy']:.2%} ({top['wall_s']:.1f} s) |")
    write_result("bench_time_to_accuracy", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
