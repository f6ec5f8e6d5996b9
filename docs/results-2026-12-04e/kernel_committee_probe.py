"""Test accuracy of the committees fixed in PLAN.md: each ensemble folder's final models alone, then all of them
together; probabilities averaged as `digitlab ensemble` does, no member picked or left out. From the repository root:

    python docs/results-2026-12-04e/kernel_committee_probe.py benchmarks/out/vgg32k5-bf16-e32-final \
        benchmarks/out/vgg48-bf16-e32-final
"""

import json
import sys
from pathlib import Path

import numpy as np

from digitlab.datasets import load_split
from digitlab.engines import TorchEngine

folders = [Path(a) for a in sys.argv[1:]]
images, labels = load_split("mnist", "test")
labels = np.asarray(labels)


def members(folder: Path) -> list[Path]:
    return sorted((p for p in folder.glob("member-*") if p.is_dir()), key=lambda p: int(p.name.split("-")[1]))


every = {
    f"{folder.name}/{m.name}": TorchEngine(m / "model.safetensors").predict_proba(images[:, None])
    for folder in folders
    for m in members(folder)
}
committees = {f"{folder.name} alone": [n for n in every if n.startswith(folder.name + "/")] for folder in folders}
committees["all together (PLAN's answer)"] = list(every)
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
    print(
        f"| {title} | {len(names)} | {mean_acc:.3f} % | {accuracy:.2f} % | {accuracy - mean_acc:+.3f} | {errors}",
        f"| {in_all} | {in_any} |",
    )
print(json.dumps(rows))
