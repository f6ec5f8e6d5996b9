"""Beyond MNIST's test set, side by side: `digitlab robustness` and `digitlab calibrate` on each given run.

    python benchmarks/bench_robustness.py RUN_DIR [RUN_DIR ...]

For each run: clean test accuracy, mean accuracy over the 22 corruptions and the worst one, the photo-like pictures
and the handwriting-font digits (both through the server's preprocessing), the expected calibration error before and
after temperature scaling, and the "not a digit" AUROCs with the share of test digits rejected at `auto` (blank for a
final model, trained with `--val-size 0`: nothing to calibrate on). Prints a table; writes
benchmarks/out/robustness.json with every figure and the machine.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from common import digitlab, machine, write_result


def measure(run: Path) -> dict:
    robustness_s, _ = digitlab("robustness", str(run), "--force")
    robust = json.loads((run / "robustness.json").read_text())
    config = json.loads((run / "config.json").read_text())["config"]
    calibrate_s, calibration = None, {}  # a final model (--val-size 0) has no validation split to calibrate on
    if config["data"]["val_size"] != 0:
        calibrate_s, _ = digitlab("calibrate", str(run))
        calibration = json.loads((run / "calibration.json").read_text())
        calibration.pop("val_novelty")
    return {"run": str(run), "recipe": config["recipe"], "augment": config["augment"], "robustness": robust,
            "calibration": calibration, "seconds": {"robustness": robustness_s, "calibrate": calibrate_s}}  # fmt: skip


def main(runs: list[str]) -> None:
    results = [measure(Path(run)) for run in runs]
    header = ["run", "clean", "mean corrupted", "worst", "photo-like (mean)", "fonts", "other writers",
              "ECE before/after", "AUROC Fashion", "AUROC noise", "digits rejected"]  # fmt: skip
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in results:
        robust, cal = r["robustness"], r["calibration"]
        photos = list(robust["photo_like"]["accuracy"].values())
        auroc = cal.get("auroc", {})

        def shown(value, form: str) -> str:  # a final model has no calibration: a blank cell, not "nan"
            return "-" if value is None else format(value, form)

        cells = [
            Path(r["run"]).name,
            f"{robust['clean_accuracy']:.2%}",
            f"{robust['mean_corrupted_accuracy']:.2%}",
            f"{robust['worst']['corruption']} {robust['worst']['accuracy']:.1%}",
            f"{sum(photos) / len(photos):.2%}",
            f"{robust['fonts']['accuracy']:.2%} ({robust['fonts']['digits']})",
            f"{robust['other_writers']['accuracy']:.2%}",
            f"{shown(cal.get('ece_test_before'), '.4f')} / {shown(cal.get('ece_test_after'), '.4f')}",
            shown(auroc.get("fashion-mnist test"), ".4f"),
            shown(auroc.get("uniform noise"), ".4f"),
            shown(cal.get("test_rejected_at_auto"), ".2%"),
        ]
        print("| " + " | ".join(cells) + " |")
    print(f"raw figures: {write_result('robustness', {'machine': machine(), 'runs': results})}")


if __name__ == "__main__":
    main(sys.argv[1:])
