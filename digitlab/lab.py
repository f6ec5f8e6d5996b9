"""The overfitting lab: measure what dropout, batch norm and augmentation each do, on the same data and budget.

Each configuration is the base run with only the three strategy switches changed; every configuration of one repeat
shares the seed, hence the same validation split, training subset, initial weights and data order. The clean training
set is measured each epoch in eval mode, so the generalisation gap (train - validation) is not blurred by augmented
batches or active dropout. Runs live in LAB_DIR/runs/; a finished run (one with metrics.json and the same config) is
reused when the lab is run again, an interrupted one resumes from its last epoch, and `--force` retrains everything.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import RunConfig, override, to_dict
from .errors import DigitlabError
from .formats import atomic_write
from .lab_report import table_markdown, write_lab_outputs
from .train import train

SWITCHES = ("dropout", "bn", "augment")
NAMED = {"none": (), "dropout": ("dropout",), "bn": ("bn",), "augment": ("augment",), "all": SWITCHES}


@dataclass(frozen=True)
class LabConfig:
    strategies: tuple[str, ...] = ("none", "dropout", "bn", "augment", "all")
    sizes: tuple[int | None, ...] = (5000,)  # training-set sizes; None means all remaining training images
    repeats: int = 1

    def __post_init__(self):
        for name in self.strategies:
            switches(name)
        if self.repeats < 1:
            raise DigitlabError(f"invalid setting: repeats {self.repeats} must be >= 1")
        if len(set(self.strategies)) != len(self.strategies):
            raise DigitlabError(f"invalid setting: strategies {self.strategies} repeat a configuration")


def switches(name: str) -> tuple[str, ...]:
    """'none', 'all', a single switch, or switches joined by '+' (e.g. 'dropout+bn')."""
    if name in NAMED:
        return NAMED[name]
    parts = tuple(name.split("+"))
    unknown = [p for p in parts if p not in SWITCHES]
    if unknown or len(set(parts)) != len(parts):
        raise DigitlabError(f"strategy '{name}': expected none, all, or a '+'-joined list of {', '.join(SWITCHES)}")
    return parts


def strategy_config(base: RunConfig, name: str, size: int | None, seed: int) -> RunConfig:
    on = switches(name)
    return override(base, {
        "model.dropout": base.model.dropout if "dropout" in on else 0.0,
        "model.batch_norm": "bn" in on,
        "augment.enabled": "augment" in on,
        "data.train_size": size,
        "train.seed": seed,
        "train.eval_train": True,
    })


def run_one(config: RunConfig, run_dir: Path, force: bool, log) -> tuple[dict, list[dict]]:
    """Train one configuration, or reuse/resume what an earlier lab left in `run_dir`."""
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    saved = run_dir / "config.json"
    same = saved.is_file() and json.loads(saved.read_text()).get("config") == to_dict(config)
    if run_dir.exists() and not same:
        shutil.rmtree(run_dir)  # a different or broken earlier run: it measured something else
    if same and (run_dir / "metrics.json").is_file():
        log(f"  reusing {run_dir}")
    elif same and (run_dir / "last.safetensors").is_file():
        log(f"  resuming {run_dir}")
        train(config, resume=run_dir, log=lambda *_: None)
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        train(config, out=run_dir, log=lambda *_: None)
    return json.loads((run_dir / "metrics.json").read_text()), json.loads((run_dir / "history.json").read_text())


def summarise(metrics: dict, history: list[dict]) -> dict:
    """The figures of one run that the lab's table reports."""
    last = history[-1]
    return {
        "train_acc_final": last["train_eval_accuracy"],
        "train_acc_best": max(h["train_eval_accuracy"] for h in history),
        "val_acc": metrics["val_accuracy"],
        "test_acc": metrics["test"]["accuracy"] if metrics["test"] else float("nan"),
        "gap_acc": last["train_eval_accuracy"] - last["val_accuracy"],
        "gap_loss": last["val_loss"] - last["train_eval_loss"],
        "best_val_loss_epoch": min(history, key=lambda h: h["val_loss"])["epoch"],
        "seconds": sum(h["seconds"] for h in history),
        "train_images": metrics["train_images"],
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def noise_notes(rows: list[dict], key: str = "test_acc") -> list[str]:
    """Pairs of configurations (same size) whose mean difference is under two standard errors of that difference."""
    notes = []
    for a, b in itertools.combinations(rows, 2):
        if a["size"] != b["size"] or len(a["runs"]) < 2:
            continue
        va, vb = [r[key] for r in a["runs"]], [r[key] for r in b["runs"]]
        diff = np.mean(va) - np.mean(vb)
        se = math.sqrt(np.var(va, ddof=1) / len(va) + np.var(vb, ddof=1) / len(vb))
        if abs(diff) < 2 * se:
            notes.append(f"{a['strategy']} vs {b['strategy']} (n={a['size_label']}): test accuracy differs by "
                         f"{100 * diff:+.2f} points, within noise (2 standard errors = {200 * se:.2f} points)")
    return notes


def run_lab(lab: LabConfig, base: RunConfig, out: str | Path, force: bool = False, log=print) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, curves = [], {}
    total = len(lab.strategies) * len(lab.sizes) * lab.repeats
    done = 0
    for size in lab.sizes:
        size_label = "all" if size is None else str(size)
        for name in lab.strategies:
            runs = []
            for repeat in range(lab.repeats):
                seed = base.train.seed + repeat
                done += 1
                log(f"[{done}/{total}] {name}, {size_label} training images, seed {seed}")
                config = strategy_config(base, name, size, seed)
                metrics, history = run_one(config, out / "runs" / f"{name}__n{size_label}__s{seed}", force, log)
                runs.append(summarise(metrics, history))
                curves.setdefault((name, size_label), []).append(history)
            rows.append({"strategy": name, "size": size, "size_label": size_label, "runs": runs,
                         **{k: mean_std([r[k] for r in runs]) for k in runs[0]}})
    result = {"lab": to_dict(lab), "base": to_dict(base), "rows": rows, "notes": noise_notes(rows)}
    with atomic_write(out / "lab.json", "w") as f:
        json.dump(result, f, indent=2, default=str)
    write_lab_outputs(out, result, curves)
    log(table_markdown(rows))
    for note in result["notes"]:
        log(f"note: {note}")
    log(f"lab saved in {out} (table.md, table.csv, curves.png, gap.png, report.html)")
    return result

