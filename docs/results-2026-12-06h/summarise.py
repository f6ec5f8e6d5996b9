"""Step 1's table from the logs: each run's validation-chosen epoch, its validation and test accuracy, its time.

python docs/results-2026-12-06h/summarise.py
"""

import re
from pathlib import Path

HERE = Path(__file__).parent
BASELINE = HERE.parent / "results-2026-12-06g"


def read(log: Path) -> dict | None:
    text = log.read_text() if log.is_file() else ""
    best = re.search(r"best epoch (\d+): validation accuracy ([\d.]+)%", text)
    test = re.search(r"test accuracy ([\d.]+)%", text)
    if not (best and test):
        return None
    seconds = sum(float(s) for s in re.findall(r"acc [\d.]+%\s+([\d.]+) s \(", text))
    return {"epoch": int(best[1]), "val": float(best[2]), "test": float(test[1]), "minutes": seconds / 60}


baseline = [read(BASELINE / f"best-s{s}.log") for s in range(3)]
print("| run | seed 0 / 1 / 2: validation (epoch) | mean | gain, paired | test (chooses nothing) | mean | training |")
print("|---|---|---|---|---|---|---|")
for name, runs in [("seed's ranges (06g)", baseline)] + [
    (f"elastic {e} px", [read(HERE / f"best-elastic{e}-s{s}.log") for s in range(3)]) for e in (2, 3)
]:
    if None in runs:
        print(f"| {name} | (not finished) |")
        continue
    gains = [r["val"] - b["val"] for r, b in zip(runs, baseline)]
    vals = " / ".join(f"{r['val']:.2f} ({r['epoch']})" for r in runs)
    tests = " / ".join(f"{r['test']:.2f}" for r in runs)
    minutes = f"{min(r['minutes'] for r in runs):.1f}-{max(r['minutes'] for r in runs):.1f} min"
    gain = " / ".join(f"{g:+.2f}" for g in gains) + f" (mean {sum(gains) / 3:+.3f})"
    print(
        f"| {name} | {vals} | {sum(r['val'] for r in runs) / 3:.3f} % | {gain} | {tests} | "
        f"{sum(r['test'] for r in runs) / 3:.3f} % | {minutes} |"
    )
