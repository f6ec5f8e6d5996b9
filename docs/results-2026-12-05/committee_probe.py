"""Test accuracy of the committee fixed in PLAN.md: every final model of the given ensemble folders, probabilities
averaged as `digitlab ensemble` does, none picked or left out; with each member's figure, the members' mean, the gain
and the errors all members share. Run from the repository root:

    python docs/results-2026-12-05/committee_probe.py benchmarks/out/robust-hw-final benchmarks/out/robust-plain-final
"""

import json
import sys
from pathlib import Path

import numpy as np

from digitlab.datasets import load_split
from digitlab.engines import TorchEngine

images, labels = load_split("mnist", "test")
labels = np.asarray(labels)
probabilities = {}
for folder in map(Path, sys.argv[1:]):
    for member in sorted(p for p in folder.glob("member-*") if p.is_dir()):
        probabilities[f"{folder.name}/{member.name}"] = TorchEngine(member / "model.safetensors").predict_proba(
            images[:, None]
        )
wrong = {name: p.argmax(1) != labels for name, p in probabilities.items()}
accuracy = {name: 1 - float(w.mean()) for name, w in wrong.items()}
committee = sum(probabilities.values()) / len(probabilities)
result = {
    "members": accuracy,
    "members_mean": float(np.mean(list(accuracy.values()))),
    "committee": float((committee.argmax(1) == labels).mean()),
    "committee_errors": int((committee.argmax(1) != labels).sum()),
    "wrong_in_all": int(np.logical_and.reduce(list(wrong.values())).sum()),
    "wrong_in_any": int(np.logical_or.reduce(list(wrong.values())).sum()),
}
result["gain"] = result["committee"] - result["members_mean"]
for name, value in accuracy.items():
    print(f"{name}: {100 * value:.2f} %")
mean, voted = 100 * result["members_mean"], 100 * result["committee"]
print(
    f"members' mean {mean:.3f} %, committee of {len(accuracy)} {voted:.2f} % (gain {voted - mean:+.3f}), "
    f"errors {result['committee_errors']}, wrong in all {result['wrong_in_all']}, in any {result['wrong_in_any']}"
)
print(json.dumps(result))
