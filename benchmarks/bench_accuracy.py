"""Final test accuracy of a recipe over several seeds (mean ± std) and of their ensemble, with and without TTA.

Runs `digitlab ensemble --recipe R --members K --trace-test` (members reuse a shared validation split and are
chosen by it; finished members are reused, interrupted ones resumed), then reads its ensemble.json. Each member is
an ordinary single-model run with its own seed, so the members' figures are the single-model result over K seeds.
Prints the machine, versions and thread settings, a table, and one JSON object (benchmarks/out/bench_accuracy.json).

    python benchmarks/bench_accuracy.py --recipe best --members 3     # about 1 hour on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import OUT, digitlab, machine, mean_std, write_result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", default="best")
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--out", help="ensemble folder (default: benchmarks/out/<recipe>-ensemble)")
    parser.add_argument("--train-args", default="", help="extra flags for digitlab ensemble")
    args = parser.parse_args()
    folder = Path(args.out or OUT / f"{args.recipe}-ensemble")
    digitlab("data", "fetch")
    seconds, _ = digitlab(
        "ensemble",
        "--recipe",
        args.recipe,
        "--members",
        str(args.members),
        "--trace-test",
        "--tta",
        "--out",
        str(folder),
        *args.train_args.split(),
    )
    metrics = json.loads((folder / "ensemble.json").read_text())["metrics"]
    members = []
    for row in metrics["members"]:
        run = json.loads((folder / row["name"] / "metrics.json").read_text())
        history = json.loads((folder / row["name"] / "history.json").read_text())
        members.append(
            {
                **row,
                "best_epoch": run["best_epoch"],
                "train_seconds": run["train_seconds_total"],
                "wall_s": history[-1].get("elapsed_s"),
            }
        )
    result = {
        "machine": machine(),
        "recipe": args.recipe,
        "command_wall_s": seconds,
        "members": members,
        "ensemble": {k: v for k, v in metrics.items() if k != "members"},
    }
    for key in ("test_accuracy", "test_accuracy_tta", "val_accuracy", "val_accuracy_tta"):
        result[f"single_{key}_mean"], result[f"single_{key}_std"] = mean_std([m[key] for m in members])
    write_result(f"bench_accuracy_{args.recipe}", result)

    print(f"machine: {result['machine']}\nrecipe {args.recipe}, {len(members)} seeds, ensemble in {folder}\n")
    print("| model | validation | test | validation, TTA | test, TTA | chosen epoch | training time |")
    print("|---|---|---|---|---|---|---|")
    for m in members:
        minutes = (m["wall_s"] or m["train_seconds"]) / 60
        print(
            f"| {m['name']} | {m['val_accuracy']:.2%} | {m['test_accuracy']:.2%} | {m['val_accuracy_tta']:.2%} | "
            f"{m['test_accuracy_tta']:.2%} | {m['best_epoch']} | {minutes:.1f} min |"
        )

    def pm(key):
        return f"{result[f'single_{key}_mean']:.2%} ± {result[f'single_{key}_std']:.2%}"

    print(
        f"| single model, mean ± std | {pm('val_accuracy')} | {pm('test_accuracy')} | {pm('val_accuracy_tta')} | "
        f"{pm('test_accuracy_tta')} | | |"
    )
    e = result["ensemble"]
    print(
        f"| ensemble of {len(members)} | {e['val_accuracy']:.2%} | {e['test_accuracy']:.2%} | "
        f"{e['val_accuracy_tta']:.2%} | {e['test_accuracy_tta']:.2%} | | |"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
