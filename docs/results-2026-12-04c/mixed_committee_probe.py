"""Test accuracy of committees of final models from several ensemble folders, probabilities averaged as `digitlab
ensemble` does, with no member picked or left out: the committees fixed in PLAN.md. Run from the repository root:

    python docs/results-2026-12-04c/mixed_committee_probe.py benchmarks/out/vgg32-bf16-e36-final \
        benchmarks/out/robust-bf16-e36-final
"""

import json
import sys
from pathlib import Path

import numpy as np

from digitlab.datasets import load_split
from digitlab.engines import TorchEngine

best_folder, robust_folder = (Path(a) for a in sys.argv[1:3])
images, labels = load_split("mnist", "test")
labels = np.asarray(labels)


def members(folder: Path) -> list[Path]:
    return sorted((p for p in folder.glob("member-*") if p.is_dir()), key=lambda p: int(p.name.split("-")[1]))


def probabilities(folder: Path) -> dict[str, np.ndarray]:
    return {
        f"{folder.name}/{m.name}": TorchEngine(m / "model.safetensors").predict_proba(images[:, None])
        for m in members(folder)
    }


best, robust = probabilities(best_folder), probabilities(robust_folder)
committees = {
    "robust members alone": list(robust),
    "best seeds 0-2 + robust": list(best)[:3] + list(robust),
    "all (PLAN's answer): best seeds 0-8 + robust": list(best) + list(robust),
    "best seeds 0-8 alone (2026-12-04)": list(best),
}
every = {**best, **robust}
wrong = {name: set(np.flatnonzero(p.argmax(1) != labels)) for name, p in every.items()}
for name, w in wrong.items():
    print(f"{name}: test {100 - len(w) / 100:.2f} % ({len(w)} wrong)")
print("\n| committee | members | members' mean, test | ensemble, test | gain | ensemble errors | wrong in all", end="")
print(" | wrong in any |")
print("|---|---|---|---|---|---|---|---|")
rows = []
for title, names in committees.items():
    mean_acc = float(np.mean([100 - len(wrong[n]) / 100 for n in names]))
    errors = int((np.mean([every[n] for n in names], axis=0).argmax(1) != labels).sum())
    accuracy = 100 - errors / 100
    in_all, in_any = len(set.intersection(*(wrong[n] for n in names))), len(set.union(*(wrong[n] for n in names)))
    rows.append(
        dict(committee=title, k=len(names), mean=mean_acc, ensemble=accuracy, errors=errors, all=in_all, any=in_any)
    )
    gain = accuracy - mean_acc
    print(
        f"| {title} | {len(names)} | {mean_acc:.3f} % | {accuracy:.2f} % | {gain:+.3f} | {errors} | {in_all}",
        f"| {in_any} |",
    )
print(json.dumps(rows))
