"""Step 1's table from the logs: each run's validation-chosen epoch, its validation and test accuracy, its time.

python docs/results-2026-12-06h/summarise.py

`table` also prints later sessions' paired tables (docs/results-2026-12-06i/summarise.py).
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


def table(baseline_name: str, baseline: list[dict], variants: list[tuple[str, str]], folder: Path) -> None:
    """One row for the baseline, one per (name, tag) variant read from folder/best-TAG-sS.log, seeds 0-2."""
    print("| `best`, seeds 0 / 1 / 2 | validation (chosen epoch) | mean | paired gain | test (chooses nothing) "
          "| training |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, runs in [(baseline_name, baseline)] + [
        (name, [read(folder / f"best-{tag}-s{s}.log") for s in range(3)]) for name, tag in variants
    ]:
        done = [(r, b) for r, b in zip(runs, baseline) if r is not None]  # a disqualified variant stops early
        if not done:
            print(f"| {name} | (not run yet) |")
            continue
        gains = [r["val"] - b["val"] for r, b in done]
        vals = " / ".join(f"{r['val']:.2f} ({r['epoch']})" for r, _ in done)
        tests = " / ".join(f"{r['test']:.2f}" for r, _ in done)
        spread = sorted({f"{r['minutes']:.1f}" for r, _ in done}, key=float)
        minutes = f"{spread[0]}-{spread[-1]} min" if len(spread) > 1 else f"{spread[0]} min"
        mean_val = f"{sum(r['val'] for r, _ in done) / len(done):.3f} %" if len(done) == 3 else "-"
        gain = " / ".join(f"{g:+.2f}" for g in gains) + (f" (mean {sum(gains) / 3:+.3f})" if len(done) == 3 else "")
        gain = "(the baseline)" if runs is baseline else gain
        print(f"| {name} | {vals} | {mean_val} | {gain} | {tests} | {minutes} |")


if __name__ == "__main__":
    table(
        "`best` as it was: dropout 0.5 (06g)",
        [read(BASELINE / f"best-s{s}.log") for s in range(3)],
        [
            ("elastic 2 px", "elastic2"),
            ("elastic 3 px", "elastic3"),
            ("label smoothing 0", "ls0"),
            ("dropout 0.25", "do25"),
        ],  # fmt: skip
        HERE,
    )
