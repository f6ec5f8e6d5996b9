"""How long `digitlab ensemble` takes to measure a finished ensemble with each engine, and what each changes.

    python benchmarks/bench_ensemble_measure.py ENSEMBLE_DIR [--engines torch onnx torch-bf16]

For each engine, one after another: the predictions of every member on the plain test images, compared with fp32
PyTorch's (how many differ; this pass also exports model.onnx where ONNX Runtime needs it, untimed), then the
wall time of `ensemble.measure` with that engine, the very call `digitlab ensemble` makes after training (every
member on the validation and test splits, plain and with the five TTA views), and the accuracies it reports.
Prints a table and writes benchmarks/out/ensemble_measure.json with the machine. Run it with nothing else running:
the times are ratios against the torch engine's, measured in the same run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import machine, write_result

from digitlab.checkpoint import checkpoint_config
from digitlab.data import load_test
from digitlab.engines import EnsembleEngine
from digitlab.ensemble import measure
from digitlab.runs import model_path, read_manifest

REPORTED = ("val_accuracy", "val_accuracy_tta", "test_accuracy", "test_accuracy_tta", "test_members_mean")


def member_predictions(folder: Path, engine: str, images) -> np.ndarray:
    """(members, N) predicted classes on the plain images."""
    members = EnsembleEngine(folder, engine=engine, device="cpu", tta=False).members
    return np.stack([member.predict_proba(images).argmax(1) for member in members])


def main(folder: Path, engines: list[str]) -> None:
    config = checkpoint_config(model_path(folder / read_manifest(folder)["members"][0]))
    test = load_test(config.data)
    reference = member_predictions(folder, "torch", test.images)
    rows = {}
    for engine in engines:
        changed = int((member_predictions(folder, engine, test.images) != reference).sum())
        start = time.perf_counter()
        result = measure(folder, config, engine, "cpu")
        seconds = time.perf_counter() - start
        rows[engine] = {"seconds": seconds, "changed_predictions": changed, **{k: result[k] for k in REPORTED}}
    members = len(reference)
    print(f"{folder}: {members} members, {members * len(test):,} member predictions on the plain test images")
    print("| engine | measure (s) | vs torch | predictions changed | test | test, TTA | members' mean |")
    print("|---|---|---|---|---|---|---|")
    base = rows.get("torch", next(iter(rows.values())))["seconds"]
    for engine, row in rows.items():
        print(
            f"| {engine} | {row['seconds']:.1f} | {base / row['seconds']:.2f}x | {row['changed_predictions']} | "
            f"{row['test_accuracy']:.2%} | {row['test_accuracy_tta']:.2%} | {row['test_members_mean']:.3%} |"
        )
    path = write_result("ensemble_measure", {"machine": machine(), "folder": str(folder), "engines": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a finished ensemble folder")
    parser.add_argument("--engines", nargs="+", default=["torch", "onnx", "torch-bf16"])
    args = parser.parse_args()
    main(args.folder, args.engines)
