"""Ensembles: K members trained with different seeds on one shared validation split, probabilities averaged, and
optional test-time augmentation (the average over fixed one-pixel shifts, augment.tta_views).

An ensemble folder holds `ensemble.json` (members, TTA switch, metrics) and one ordinary run folder per member, so
each member can be evaluated, reported or resumed on its own; `digitlab evaluate` and `predict` accept the folder.
Members share the validation split (data.split_seed), so the ensemble's validation accuracy is measured on images no
member trained on; the test set is evaluated once, at the end. Members train one after another, or `jobs` at a time
in worker processes (CPU cores shared out, or one CUDA device each).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .augment import TTA_SHIFTS, tta_views
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


def train_member(config: RunConfig, run_dir: Path) -> None:
    """Train one member, or resume it where its checkpoint stopped."""
    resume = (run_dir / "last.safetensors").is_file()
    train(config, out=None if resume else run_dir, resume=run_dir if resume else None, log=lambda *_: None)


def train_member_in_worker(config: RunConfig, run_dir: Path, device_index: int | None) -> str | None:
    """`train_member` in a worker process: an input problem comes back as its message (what the user needs)."""
    try:
        if device_index is not None:
            torch.cuda.set_device(device_index)
        train_member(config, run_dir)
        return None
    except DigitlabError as e:  # Interrupted included: its message says how to resume
        return f"{run_dir.name}: {e}"


def train_ensemble(base: RunConfig, members: int, out: str | Path, tta: bool = False, jobs: int | None = None,
                   log=print) -> dict:
    """Train (or reuse, or resume) each member, `jobs` at a time, then measure members and the ensemble.

    With jobs > 1 each member trains in its own process: on a CPU the cores are shared out (threads = cores / jobs),
    with several CUDA devices member i uses device i mod count. jobs=None: one per CUDA device when there are
    several, else 1 (on 2 CPU cores, two fast-recipe members took 42.9 s one after the other with 2 threads
    and 42.5 s side by side with 1 thread each: no gain to default to)."""
    if members < 1:
        raise DigitlabError(f"--members {members} must be >= 1")
    cuda_count = torch.cuda.device_count() if base.train.device in ("auto", "cuda") else 0
    if jobs is None:
        jobs = cuda_count if cuda_count > 1 else 1
    if jobs < 1:
        raise DigitlabError(f"--jobs {jobs} must be >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    configs = [member_config(base, index) for index in range(members)]
    names = [f"member-{index}" for index in range(members)]
    todo = [i for i in range(members) if not (out / names[i] / "metrics.json").is_file()]
    for i in set(range(members)) - set(todo):
        log(f"[member {i + 1}/{members}] reusing {out / names[i]}")
    if jobs == 1:
        for i in todo:
            log(f"[member {i + 1}/{members}] seed {configs[i].train.seed}: training")
            train_member(configs[i], out / names[i])
    elif todo:
        import concurrent.futures
        import multiprocessing
        import os
        threads = base.train.threads or max(1, (os.cpu_count() or 1) // jobs)
        log(f"training {len(todo)} members, {jobs} at a time in separate processes"
            + (f" over {cuda_count} CUDA devices" if cuda_count > 1 else f", {threads} CPU threads each"))
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = {pool.submit(train_member_in_worker, override(configs[i], {"train.threads": threads}),
                                   out / names[i], i % cuda_count if cuda_count > 1 else None): i for i in todo}
            errors = []
            for future in concurrent.futures.as_completed(futures):
                i, error = futures[future], future.result()
                log(f"[member {i + 1}/{members}] " + (f"failed: {error}" if error else "done"))
                errors += [error] if error else []
            if errors:
                raise DigitlabError("\n".join(errors))
    manifest = {"members": names, "tta": tta}
    with atomic_write(out / MANIFEST, "w") as f:
        json.dump(manifest, f, indent=2)
    result = measure(out, member_config(base, 0))  # always measured afresh: seconds, against minutes of training
    with atomic_write(out / MANIFEST, "w") as f:
        json.dump({**manifest, "metrics": result}, f, indent=2)
    for m in result["members"]:
        log(f"  {m['name']}: validation {m['val_accuracy']:.2%}, test {m['test_accuracy']:.2%} "
            f"(with TTA: {m['val_accuracy_tta']:.2%}, {m['test_accuracy_tta']:.2%})")
    log(f"ensemble of {members}: validation {result['val_accuracy']:.2%}, test {result['test_accuracy']:.2%}; "
        f"with TTA: {result['val_accuracy_tta']:.2%}, {result['test_accuracy_tta']:.2%}"
        f"{' (TTA is on for predict and serve)' if tta else ''}\nensemble saved in {out}")
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
    """Each member's and the ensemble's validation and test accuracy, without TTA (`test_accuracy`) and with it
    (`test_accuracy_tta`), whatever the manifest's switch (which only says what predict and serve do)."""
    ensemble = EnsembleEngine(folder, engine="torch")
    _, val = load_train_val(config.data, config.train.seed)
    splits = {"val": val, "test": load_test(config.data)}
    names = read_manifest(folder)["members"]
    # probabilities[split][member][view]: each computed once, then averaged in every combination reported
    views = {split: tta_views(digits.images) if digits is not None and len(digits) else None
             for split, digits in splits.items()}
    probabilities = {split: [[view_probabilities(member, view) for view in (views[split] or [None] * len(TTA_SHIFTS))]
                             for member in ensemble.members] for split in splits}
    result = {"members": [{"name": name} for name in names]}
    for split, digits in splits.items():
        for tta, suffix in ((False, ""), (True, "_tta")):
            def averaged(members, tta=tta, split=split):
                return average([p if tta else p[:1] for p in members])
            for index, row in enumerate(result["members"]):
                row[f"{split}_accuracy{suffix}"] = accuracy(averaged(probabilities[split][index:index + 1]), digits)
            result[f"{split}_accuracy{suffix}"] = accuracy(averaged(probabilities[split]), digits)
    return result


def view_probabilities(member, view: torch.Tensor | None) -> np.ndarray | None:
    return None if view is None else np.asarray(member.predict_proba(view), dtype=np.float32)


def average(nested: list[list[np.ndarray | None]]) -> np.ndarray | None:
    flat = [p for views in nested for p in views]
    return None if flat[0] is None else sum(flat) / len(flat)


def accuracy(probabilities: np.ndarray | None, digits) -> float:
    if probabilities is None:
        return float("nan")
    return metrics_from_logits(torch.from_numpy(probabilities).clamp_min(1e-12).log(), digits.labels)["accuracy"]
