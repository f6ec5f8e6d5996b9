"""Step 3's table: each `fast` run's validation and test accuracy, plain and --deskew, paired by seed; and each
committee's accuracy and gain over its members' mean (no TTA). From the repo root:

    python docs/results-2026-12-07c/deskew_table.py benchmarks/out/deskew
"""

import json
import statistics
import sys
from pathlib import Path

folder = Path(sys.argv[1])
runs = {}
for kind in ("plain", "deskew"):
    for seed in range(6):
        metrics = json.loads((folder / f"{kind}-{seed}" / "metrics.json").read_text())
        runs[kind, seed] = (100 * metrics["val_accuracy"], 100 * metrics["test"]["accuracy"])
print("| seed | plain: validation | test | deskewed: validation | test | validation, deskewed - plain |")
print("|---|---|---|---|---|---|")
for seed in range(6):
    (pv, pt), (dv, dt) = runs["plain", seed], runs["deskew", seed]
    print(f"| {seed} | {pv:.2f} % | {pt:.2f} % | {dv:.2f} % | {dt:.2f} % | {dv - pv:+.2f} |")
means = {k: [statistics.mean(runs[k, s][i] for s in range(6)) for i in (0, 1)] for k in ("plain", "deskew")}
print(
    f"| mean | {means['plain'][0]:.3f} % | {means['plain'][1]:.3f} % | {means['deskew'][0]:.3f} % | "
    f"{means['deskew'][1]:.3f} % | {means['deskew'][0] - means['plain'][0]:+.3f} |"
)
print("\n| committee | members | validation | gain | test | gain |\n|---|---|---|---|---|---|")
names = {"A": "plain 0-2", "B": "deskewed 0-2", "C": "plain 0-2 + deskewed 0-2", "D": "plain 0-5",
         "E": "deskewed 0-5", "F": "all twelve"}  # fmt: skip
for key, members in names.items():
    result = json.loads((folder / f"committee-{key}" / "ensemble.json").read_text())
    metrics = result.get("metrics", result)
    print(
        f"| {key} | {members} | {100 * metrics['val_accuracy']:.2f} % | {100 * metrics['val_gain']:+.3f} | "
        f"{100 * metrics['test_accuracy']:.2f} % | {100 * metrics['test_gain']:+.3f} |"
    )
