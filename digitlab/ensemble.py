"""Ensembles: K members trained with different seeds on one shared validation split, probabilities averaged, and
optional test-time augmentation (the average over fixed one-pixel shifts, augment.tta_views).

An ensemble folder holds `ensemble.json` (members, TTA switch, metrics) and one ordinary run folder per member, so
each member can be evaluated, reported or resumed on its own; `digitlab evaluate` and `predict` accept the folder.
Members share the validation split (data.split_seed), so the ensemble's validation accuracy is measured on images no
member trained on; the test set is evaluated once, at the end. Members train one after another on the one device.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .augment import tta_views
from .config import RunConfig, override
from .data import load_test, load_train_val
from .errors import DigitlabError
from .evaluate import metrics_from_logits
from .formats import atomic_write
from .train import train

MANIFEST = "ensemble.json"


def is_ensemble(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def member_config(base: RunConfig, index: int) -> RunConfig:
    split_seed = base.data.split_seed if base.data.split_seed is not None else base.train.seed
    return override(base, {"train.seed": base.train.seed + index, "data.split_seed": split_seed})


def train_ensemble(base: RunConfig, members: int, out: str | Path, tta: bool = False, log=print) -> dict:
    """Train (or reuse, or resume) each member, then measure members and the ensemble."""
    if members < 1:
        raise DigitlabError(f"--members {members} must be >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names, trained = [], False
    for index in range(members):
        config, run_dir = member_config(base, index), out / f"member-{index}"
        names.append(run_dir.name)
        log(f"[member {index + 1}/{members}] seed {config.train.seed}")
        if (run_dir / "metrics.json").is_file():
            log(f"  reusing {run_dir}")
        elif (run_dir / "last.safetensors").is_file():
            train(config, resume=run_dir, log=lambda *_: None)
            trained = True
        else:
            train(config, out=run_dir, log=lambda *_: None)
            trained = True
    manifest = {"members": names, "tta": tta}
    previous = read_manifest(out) if (out / MANIFEST).is_file() else {}
    if not trained and {k: previous.get(k) for k in manifest} == manifest and "metrics" in previous:
        result = previous["metrics"]  # nothing changed since it was measured
    else:
        with atomic_write(out / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=2)
        result = measure(out, member_config(base, 0))
    with atomic_write(out / MANIFEST, "w") as f:
        json.dump({**manifest, "metrics": result}, f, indent=2)
    for m in result["members"]:
        log(f"  {m['name']}: validation {m['val_accuracy']:.2%}, test {m['test_accuracy']:.2%}")
    log(f"ensemble of {members}{' with TTA' if tta else ''}: validation {result['val_accuracy']:.2%}, "
        f"test {result['test_accuracy']:.2%}\nensemble saved in {out}")
    return result


def read_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        return {**manifest, "members": list(manifest["members"]), "tta": bool(manifest["tta"])}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DigitlabError(f"{folder / MANIFEST}: not a readable ensemble manifest ({e})") from None


class EnsembleEngine:
    """Averages the members' probabilities (over the TTA views too when the manifest asks for them)."""
    name = "ensemble"

    def __init__(self, folder: str | Path, engine: str = "auto", device: str = "cpu"):
        from .export import load_engine
        folder = Path(folder)
        manifest = read_manifest(folder)
        names, self.tta = manifest["members"], manifest["tta"]
        if not names or any(not isinstance(n, str) or "/" in n or n.startswith(".") for n in names):
            raise DigitlabError(f"{folder / MANIFEST}: members must be folder names inside the ensemble")
        self.members = [load_engine(folder / n, engine, device) for n in names]
        self.identity = {"engine": f"ensemble of {len(names)} ({self.members[0].name})", "file": str(folder),
                         "tta": self.tta}

    def predict_proba(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        images = torch.as_tensor(images)
        views = tta_views(images) if self.tta else [images]
        total = sum(member.predict_proba(view) for member in self.members for view in views)
        return total / (len(self.members) * len(views))


def measure(folder: Path, config: RunConfig) -> dict:
    """Each member's and the ensemble's validation and test accuracy (torch engine, exact)."""
    ensemble = EnsembleEngine(folder, engine="torch")
    _, val = load_train_val(config.data, config.train.seed)
    test = load_test(config.data)
    result = {"members": []}
    for name, member in zip(read_manifest(folder)["members"], ensemble.members):
        result["members"].append({"name": name, **{f"{split}_accuracy": accuracy(member, data) for split, data in
                                                   (("val", val), ("test", test))}})
    result["val_accuracy"], result["test_accuracy"] = accuracy(ensemble, val), accuracy(ensemble, test)
    return result


def accuracy(engine, digits) -> float:
    if digits is None or len(digits) == 0:
        return float("nan")
    probabilities = torch.from_numpy(np.asarray(engine.predict_proba(digits.images), dtype=np.float32))
    return metrics_from_logits(probabilities.clamp_min(1e-12).log(), digits.labels)["accuracy"]
