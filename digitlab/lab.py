"""The overfitting lab: measure what dropout, batch norm and augmentation each do, on the same data and budget.

Each configuration is the base run with only the strategy switches changed (the seed's three, and `robust`: the
augmentation options of the `robust` recipe on top of the seed's augmentation, so that augmentation policies can be
compared); every configuration of one repeat shares the seed, hence the same validation split, training subset,
initial weights and data order. The clean training set is measured each epoch in eval mode, so the generalisation
gap (train - validation) is not blurred by augmented batches or active dropout. Runs live in LAB_DIR/runs/; a
finished run (one with metrics.json and the same config) is reused when the lab is run again, an interrupted one
resumes from its last epoch, a folder holding a run of another config is refused (naming the differing fields), and
`--force` retrains. With `robustness` set, every run is also measured on that many images of its own validation split
under the robustness suite (robustness.py; kept as the run's robustness_val.json and reused), and the table gains the
mean corrupted accuracy and the font digits' accuracy. The validation split, not the test set, by default: the lab's
table is where policies are compared and chosen, and the test set chooses nothing (`robustness_split="test"` measures
the test images instead, for a report of models already chosen).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import console
from .cluster import RayOptions, train_on_ray
from .config import AugmentConfig, RunConfig, override, recipe, to_dict
from .errors import DigitlabError
from .evaluate import resolve_device
from .lab_report import table_markdown, table_rows, write_lab_outputs
from .runs import HISTORY_JSON, LAB, METRICS, ROBUSTNESS, ROBUSTNESS_VAL, claim_run, model_sha256, read_json, write_json
from .tracking import close_parent, open_parent
from .train import train

SWITCHES = ("dropout", "bn", "augment", "robust")
SEED_SWITCHES = SWITCHES[:3]  # 'all' is the seed's three strategies; 'robust' is asked for by name
NAMED = {"none": (), "dropout": ("dropout",), "bn": ("bn",), "augment": ("augment",), "all": SEED_SWITCHES}
ROBUST_FIELDS = ("elastic", "stroke", "blur", "contrast", "noise", "invert", "erase", "outline", "lines")


@dataclass(frozen=True)
class LabConfig:
    strategies: tuple[str, ...] = ("none", "dropout", "bn", "augment", "all")
    sizes: tuple[int | None, ...] = (5000,)  # training-set sizes; None means all remaining training images
    repeats: int = 1
    robustness: int = 0  # images each run is measured on under the robustness suite; 0: not measured
    robustness_split: str = "val"  # whose images: the run's validation split (to choose on) or the test set

    def __post_init__(self):
        for name in self.strategies:
            switches(name)
        if self.repeats < 1:
            raise DigitlabError(f"invalid setting: repeats {self.repeats} must be >= 1")
        if not 0 <= self.robustness <= 10_000:
            raise DigitlabError(f"invalid setting: robustness {self.robustness} must be 0-10,000 images")
        if self.robustness_split not in ("val", "test"):
            raise DigitlabError(f"invalid setting: robustness_split {self.robustness_split!r} is neither val nor test")
        if len(set(self.strategies)) != len(self.strategies):
            raise DigitlabError(f"invalid setting: strategies {self.strategies} repeat a configuration")


def switches(name: str) -> tuple[str, ...]:
    """'none', 'all', a single switch, or switches joined by '+' (e.g. 'dropout+bn', 'all+robust')."""
    if name in NAMED:
        return NAMED[name]
    parts = tuple(p for part in name.split("+") for p in NAMED.get(part, (part,)))
    unknown = [p for p in parts if p not in SWITCHES]
    if unknown or len(set(parts)) != len(parts):
        raise DigitlabError(f"strategy '{name}': expected none, all, or a '+'-joined list of {', '.join(SWITCHES)}")
    return parts


def strategy_config(base: RunConfig, name: str, size: int | None, seed: int) -> RunConfig:
    on = switches(name)
    policy = recipe("robust").augment if "robust" in on else AugmentConfig()  # off: every robustness option 0
    return override(
        base,
        {
            "model.dropout": base.model.dropout if "dropout" in on else 0.0,
            "model.batch_norm": "bn" in on,
            "augment.enabled": "augment" in on or "robust" in on,
            **{f"augment.{field}": getattr(policy, field) for field in ROBUST_FIELDS},
            "data.train_size": size,
            "train.seed": seed,
            "train.eval_train": True,
        },
    )


def run_cell(config: RunConfig, run_dir: Path, state: str, log) -> tuple[dict, list[dict]]:
    """Train one configuration, or reuse/resume what an earlier lab left in `run_dir` (state from runs.claim_run)."""
    if state == "finished":
        log(f"  reusing {run_dir}")
    elif state == "resume":
        log(f"  resuming {run_dir}")
        train(config, resume=run_dir, log=lambda *_: None)
    else:
        train(config, out=run_dir, log=lambda *_: None)
    return read_json(run_dir / METRICS, "run metrics"), read_json(run_dir / HISTORY_JSON, "run history")


def measure_robustness(run_dir: Path, images: int, split: str, log) -> dict:
    """The run's robustness_val.json (robustness.json for the test split) on its first `images` images of that
    split (seed 0): reused when it was measured so before, on this very model."""
    from .robustness import SUITE_VERSION, robustness

    path = run_dir / (ROBUSTNESS_VAL if split == "val" else ROBUSTNESS)
    if path.is_file():
        done = read_json(path, "robustness result")
        asked = done.get("limit", done.get("images"))  # results written before `limit` was recorded: `images`
        same = (asked, done.get("suite_version"), done.get("seed"), done.get("split", "test"), done.get("model_sha256"))
        if same == (images, SUITE_VERSION, 0, split, model_sha256(run_dir)):
            return done
    log(f"  robustness suite on {images:,} {'validation' if split == 'val' else 'test'} images")
    # with PyTorch: the auto engine would first export each lab run to ONNX (3-8 s a run), more than ONNX Runtime's
    # speed saves unless a run is measured on several thousand images (the suite makes about 30 pictures of each;
    # reference CNN, 2-core Xeon: 8,800 images/s in PyTorch, 13,100 in ONNX Runtime)
    return robustness(run_dir, engine="torch", limit=images, force=True, split=split, log=lambda *_: None)


def summarise(metrics: dict, history: list[dict], robust: dict | None = None) -> dict:
    """The figures of one run that the lab's table reports."""
    last = history[-1]
    robust_figures = {}
    if robust is not None:
        split = robust.get("split", "test")  # the corrupted figure is named by its images: val_ or test_
        robust_figures = {
            f"{split}_corrupted_acc": robust["mean_corrupted_accuracy"],
            "fonts_acc": robust["fonts"]["accuracy"],
        }
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
        **robust_figures,
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


NOTED = {
    "test_acc": "test accuracy",
    "val_corrupted_acc": "mean corrupted validation accuracy",
    "test_corrupted_acc": "mean corrupted test accuracy",
}


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
            notes.append(
                f"{a['strategy']} vs {b['strategy']} (n={a['size_label']}): {NOTED[key]} differs by "
                f"{100 * diff:+.2f} points, within noise (2 standard errors = {200 * se:.2f} points)"
            )
    return notes


def lab_cells(lab: LabConfig, base: RunConfig, out: Path) -> list[dict]:
    """Every (size, strategy, repeat) of the lab with its config and run folder, in the order they train."""
    cells = []
    for size in lab.sizes:
        size_label = "all" if size is None else str(size)
        for name in lab.strategies:
            for repeat in range(lab.repeats):
                seed = base.train.seed + repeat
                cells.append(
                    {
                        "size": size,
                        "size_label": size_label,
                        "strategy": name,
                        "seed": seed,
                        "config": strategy_config(base, name, size, seed),
                        "dir": out / "runs" / f"{name}__n{size_label}__s{seed}",
                    }
                )
    return cells


def run_lab(
    lab: LabConfig, base: RunConfig, out: str | Path, force: bool = False, ray: RayOptions | None = None, log=print
) -> dict:
    """Train (or reuse, or resume) every cell, then write the table, figures and report. Every cell's folder is
    claimed before anything trains (runs.claim_run): a lab folder holding runs of another config is refused at once
    with the differing fields, and nothing there is deleted without `force`."""
    if ray is None:
        resolve_device(base.train.device)  # a device that is not here (--device cuda on a CPU machine): no folder
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parent = open_parent(base.train.log, out, to_dict(base), base.train.log_uri)  # MLflow: cells nest under it
    cells = lab_cells(lab, override(base, {"train.log_parent": parent}), out)
    states = [claim_run(cell["dir"], to_dict(cell["config"]), force) for cell in cells]
    if ray is not None:  # every cell to train as one Ray task; then all of them are finished runs to read
        work = {cell["dir"]: cell["config"] for cell, state in zip(cells, states) if state != "finished"}
        if work:
            train_on_ray(work, ray, log)
        states = ["finished"] * len(cells)
    results: dict[tuple, list] = {}
    with console.bar(f"lab {out.name}", len(cells), "runs") as total:
        for done, (cell, state) in enumerate(zip(cells, states), start=1):
            log(f"[{done}/{len(cells)}] {cell['strategy']}, {cell['size_label']} training images, seed {cell['seed']}")
            metrics, history = run_cell(cell["config"], cell["dir"], state, log)
            robust = (
                measure_robustness(cell["dir"], lab.robustness, lab.robustness_split, log) if lab.robustness else None
            )
            results.setdefault((cell["strategy"], cell["size_label"]), []).append((metrics, history, robust))
            total.update(advance=1)
    close_parent(base.train.log, parent, base.train.log_uri)
    return write_lab(lab, base, out, cells, results, log)


def write_lab(lab: LabConfig, base: RunConfig, out: Path, cells: list[dict], results: dict, log) -> dict:
    """lab.json, the tables, figures and report from every cell's metrics and history."""
    rows, curves = [], {}
    for (name, size_label), measured in results.items():  # measured: (metrics, history, robustness) per repeat
        size = next(c["size"] for c in cells if c["strategy"] == name and c["size_label"] == size_label)
        runs = [summarise(*figures) for figures in measured]
        curves[(name, size_label)] = [history for _, history, _ in measured]
        rows.append(
            {
                "strategy": name,
                "size": size,
                "size_label": size_label,
                "runs": runs,
                **{k: mean_std([r[k] for r in runs]) for k in runs[0]},
            }
        )
    notes = noise_notes(rows) + (noise_notes(rows, f"{lab.robustness_split}_corrupted_acc") if lab.robustness else [])
    result = {"lab": to_dict(lab), "base": to_dict(base), "rows": rows, "notes": notes}
    write_json(out / LAB, result, default=str)
    write_lab_outputs(out, result, curves)
    header, cells = table_rows(rows)
    console.table("lab", header, cells, plain=table_markdown(rows), log=log)
    for note in result["notes"]:
        log(f"note: {note}")
    log(f"lab saved in {out} (table.md, table.csv, curves.png, gap.png, report.html)")
    return result
