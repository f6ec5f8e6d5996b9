"""Does an ensemble gain more when its members differ in more than their seed? Same recipe vs varied members.

    python benchmarks/bench_ensemble_mix.py [--recipe fast] [--epochs 8] [--out /tmp/ensemble-mix]

Both ensembles have three members on one validation split (split seed 0) and are measured by `digitlab ensemble`:
- same: `digitlab ensemble --recipe R --members 3`, members that differ only in their seed (0, 1, 2);
- varied: the same seed-0 member, a seed-1 member trained with the full-strength robustness policy (ROBUST_FLAGS,
  the values the `robust` recipe first used: twice its present probabilities), and a
  seed-2 member of another architecture (the compact model at twice the recipe's width; for a reference-CNN recipe,
  the compact model at width 32), assembled with `digitlab ensemble --from`.
Prints each member's and each ensemble's validation and test accuracy and the gain over the members' mean; writes
benchmarks/out/ensemble_mix.json with the machine. Nothing is chosen on the test set: the members and their
settings are fixed here before any run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import digitlab, machine, write_result

from digitlab.config import recipe

ROBUST_FLAGS = ("--augment", "--elastic", "2", "--stroke", "0.2", "--blur", "0.15", "--contrast", "0.2", "--noise",
                "0.15", "--invert", "0.1", "--erase", "0.1", "--outline", "0.1", "--lines", "0.15")  # fmt: skip


def other_architecture(name: str) -> tuple[str, ...]:
    model = recipe(name).model
    if model.arch == "compact":
        return ("--width", str(2 * model.width))
    return ("--arch", "compact", "--width", "32")


def main(name: str, epochs: int, out: Path) -> None:
    common = ("--recipe", name, "--epochs", str(epochs))
    seconds, _ = digitlab("ensemble", *common, "--members", "3", "--out", str(out / "same"))
    timings = {"same (3 members)": seconds}
    varied = {
        "robust augmentation, seed 1": ("--seed", "1", "--split-seed", "0", *ROBUST_FLAGS),
        "other architecture, seed 2": ("--seed", "2", "--split-seed", "0", *other_architecture(name)),
    }
    for label, flags in varied.items():
        run = out / label.split(",")[0].replace(" ", "-")
        if not (run / "metrics.json").is_file():
            timings[label], _ = digitlab("train", *common, *flags, "--out", str(run))
    members = [str(out / "same" / "member-0")] + [str(out / label.split(",")[0].replace(" ", "-")) for label in varied]
    digitlab("ensemble", "--from", *members, "--out", str(out / "varied"), "--force")
    results = {}
    for kind in ("same", "varied"):
        metrics = json.loads((out / kind / "ensemble.json").read_text())["metrics"]
        results[kind] = metrics
    print(f"| ensemble ({name}, {epochs} epochs) | members' test | members' mean | ensemble test | gain (test) "
          "| gain (validation) |\n|---|---|---|---|---|---|")  # fmt: skip
    for kind, m in results.items():
        tests = " / ".join(f"{row['test_accuracy']:.2%}" for row in m["members"])
        print(f"| {kind} | {tests} | {m['test_members_mean']:.2%} | {m['test_accuracy']:.2%} | "
              f"{100 * m['test_gain']:+.2f} | {100 * m['val_gain']:+.2f} |")  # fmt: skip
    result = {"machine": machine(), "recipe": name, "epochs": epochs, "varied_members": members, "results": results,
              "seconds": timings}  # fmt: skip
    path = write_result("ensemble_mix", result)
    print(f"raw figures: {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("/tmp/ensemble-mix"))
    args = parser.parse_args()
    main(args.recipe, args.epochs, args.out)
