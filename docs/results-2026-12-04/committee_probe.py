"""Test accuracy of the ensemble of the first k members, k = 1..n, in seed order (no member picked or left out), and
how many test digits the members get wrong in common. Run from the repository root:

    python docs/results-2026-12-04/committee_probe.py benchmarks/out/vgg32-bf16-e36-final
"""

import json
import sys
from pathlib import Path

import numpy as np

from digitlab.datasets import load_split
from digitlab.engines import TorchEngine

folder = Path(sys.argv[1])
images, labels = load_split("mnist", "test")
labels = np.asarray(labels)
members = sorted((p for p in folder.glob("member-*") if p.is_dir()), key=lambda p: int(p.name.split("-")[1]))
probs = np.stack([TorchEngine(m / "model.safetensors").predict_proba(images[:, None]) for m in members])
wrong = [set(np.flatnonzero(p.argmax(1) != labels)) for p in probs]
rows = []
print("| members | members' mean, test | ensemble, test | gain | ensemble errors | wrong in all | wrong in any |")
print("|---|---|---|---|---|---|---|")
for k in range(1, len(members) + 1):
    mean_acc = float(np.mean([(p.argmax(1) == labels).mean() for p in probs[:k]]) * 100)
    ensemble_errors = int((probs[:k].mean(0).argmax(1) != labels).sum())
    ensemble_acc = 100 - ensemble_errors / len(labels) * 100
    in_all, in_any = len(set.intersection(*wrong[:k])), len(set.union(*wrong[:k]))
    rows.append(dict(k=k, mean=mean_acc, ensemble=ensemble_acc, errors=ensemble_errors, all=in_all, any=in_any))
    print(
        f"| {k} | {mean_acc:.3f} % | {ensemble_acc:.2f} % | {ensemble_acc - mean_acc:+.3f} | {ensemble_errors} "
        f"| {in_all} | {in_any} |"
    )
for m, w in zip(members, wrong):
    print(f"{m.name}: {len(w)} wrong")
print(json.dumps(rows))
