"""Ensembles: K members trained with different seeds on one shared validation split (or each on its own),
probabilities averaged, and optional test-time augmentation (the average over fixed one-pixel shifts, and their
mirrors for members trained on mirrored images: augment.tta_views).

An ensemble folder holds `ensemble.json` (members, TTA switch, metrics) and one ordinary run folder per member, so
each member can be evaluated, reported or resumed on its own; `digitlab evaluate` and `predict` accept the folder.
Members share the validation split (data.split_seed), so the ensemble's validation accuracy is measured on images no
member trained on; the test set is evaluated once, at the end. Members train one after another, or `jobs` at a time
in worker processes (CPU cores shared out, or one CUDA device each).

`member_splits`: member i holds out its own validation split (split seed + i), so each trains on other images, as
the honest Kaggle committees train each CNN on a fresh random split. No image is then held out by every member: the
ensemble's validation accuracy is out of bag (Breiman 1996): each image held out by some member, scored by the
average of those members alone.

`assemble_ensemble` makes an ensemble of runs trained apart — other recipes, architectures or augmentation, the
members that differ where averaging gains — after checking that they share one validation split; each is copied in.
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from . import console
from .augment import mirrored_in_training, tta_views
from .checkpoint import checkpoint_config, load_checkpoint
from .cluster import RayOptions, train_on_ray
from .config import RunConfig, override, to_dict
from .data import load_source, load_test, split_indices
from .engines import EnsembleEngine, check_engine
from .errors import DigitlabError
from .evaluate import metrics_from_logits, resolve_device
from .runs import MANIFEST, METRICS, MODEL, claim_run, model_path, read_manifest, remove_run, write_json
from .tracking import close_parent, open_parent
from .train import train


def member_config(
    base: RunConfig, index: int, ink_widths: tuple[int, ...] = (), member_splits: bool = False
) -> RunConfig:
    """Member `index`: the base's seed + index on the base's validation split (with `member_splits`, on its own:
    split seed + index); with `ink_widths`, the index-th width, cycling (0: the digits as written), so that members
    see the digits differently (Ciresan et al. 2012's columns: models.InkWidth)."""
    split_seed = base.data.split_seed if base.data.split_seed is not None else base.train.seed
    changes = {"train.seed": base.train.seed + index, "data.split_seed": split_seed + (index if member_splits else 0)}
    if ink_widths:
        changes["model.ink_width"] = ink_widths[index % len(ink_widths)]
    return override(base, changes)


def train_member(config: RunConfig, run_dir: Path, force: bool = False) -> str:
    """Train one member, resume it where its checkpoint stopped, or reuse it when finished with the same config
    (runs.claim_run: a member trained with another config is refused, never reported as this one)."""
    state = claim_run(run_dir, to_dict(config), force)
    if state != "finished":
        train(
            config,
            out=run_dir if state == "new" else None,
            resume=run_dir if state == "resume" else None,
            log=lambda *_: None,
        )
    return state


def train_member_in_worker(config: RunConfig, run_dir: Path, device_index: int | None) -> str | None:
    """`train_member` in a worker process: an input problem comes back as its message (what the user needs)."""
    try:
        if device_index is not None:
            torch.cuda.set_device(device_index)
        train_member(config, run_dir)
        return None
    except DigitlabError as e:  # Interrupted included: its message says how to resume
        return f"{run_dir.name}: {e}"


def train_in_processes(work: dict[Path, RunConfig], jobs: int, cuda_count: int, log) -> None:
    """Train the members `jobs` at a time, each in a fresh spawned process (no forked torch thread pools); CPU
    threads are shared out, and with several CUDA devices member i uses device i mod count."""
    threads = next(iter(work.values())).train.threads or max(1, (os.cpu_count() or 1) // jobs)
    log(
        f"training {len(work)} members, {jobs} at a time in separate processes"
        + (f" over {cuda_count} CUDA devices" if cuda_count > 1 else f", {threads} CPU threads each")
    )
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = {
            pool.submit(
                train_member_in_worker,
                override(config, {"train.threads": threads}),
                run_dir,
                i % cuda_count if cuda_count > 1 else None,
            ): run_dir
            for i, (run_dir, config) in enumerate(work.items())
        }
        errors = []
        with console.bar("ensemble members", len(futures), "members") as total:
            for future in concurrent.futures.as_completed(futures):
                error = future.result()
                log(f"[{futures[future].name}] " + (f"failed: {error}" if error else "done"))
                errors += [error] if error else []
                total.update(advance=1)
    if errors:
        raise DigitlabError("\n".join(errors))


def train_ensemble(
    base: RunConfig,
    members: int,
    out: str | Path,
    tta: bool = False,
    jobs: int | None = None,
    force: bool = False,
    ray: RayOptions | None = None,
    log=print,
    ink_widths: tuple[int, ...] = (),
    member_splits: bool = False,
    engine: str = "auto",
) -> dict:
    """Train (or reuse, or resume) each member, `jobs` at a time, then measure members and the ensemble (with
    `engine`, on the device the members trained on).

    jobs=None: one per CUDA device when there are several, else 1 (on 2 CPU cores, two fast-recipe members took
    42.9 s one after the other with 2 threads and 42.5 s side by side with 1 thread each: no gain to default to).
    Every member folder is claimed before anything trains, so an ensemble folder holding members of another config
    is refused at once (runs.claim_run), not after an hour."""
    if members < 1:
        raise DigitlabError(f"--members {members} must be >= 1")
    check_engine(engine)  # the measurement's engine, refused now rather than after the members trained
    device = base.train.device if ray is None else "auto"  # where they are measured; Ray's workers may have GPUs
    resolve_device(device)  # a device that is not here (--device cuda on a CPU machine): refused before any folder
    if member_splits and base.data.val_size == 0:
        raise DigitlabError("--member-splits gives each member its own validation split: it needs one (--val-size N, "
                            "N > 0); with --val-size 0 every member trains on all the images")  # fmt: skip
    for width in ink_widths:  # a bad width is refused before any folder is made
        override(base, {"model.ink_width": width})
    cuda_count = torch.cuda.device_count() if base.train.device in ("auto", "cuda") else 0
    jobs = (cuda_count if cuda_count > 1 else 1) if jobs is None else jobs
    if jobs < 1:
        raise DigitlabError(f"--jobs {jobs} must be >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parent = open_parent(base.train.log, out, to_dict(base), base.train.log_uri)  # MLflow: members nest under it
    configs = {out / f"member-{i}": member_config(override(base, {"train.log_parent": parent}), i, ink_widths,
                                                  member_splits) for i in range(members)}  # fmt: skip
    states = {run_dir: claim_run(run_dir, to_dict(config), force) for run_dir, config in configs.items()}
    work = {run_dir: configs[run_dir] for run_dir, state in states.items() if state != "finished"}
    for run_dir in configs.keys() - work.keys():
        log(f"[{run_dir.name}] reusing {run_dir} (same config, finished)")
    if ray is not None and work:
        train_on_ray(work, ray, log)
    elif jobs == 1 or len(work) <= 1:
        with console.bar(f"ensemble {out.name}", len(work), "members") as total:
            for run_dir, config in work.items():
                ink = f", ink width {config.model.ink_width}" if ink_widths else ""
                log(f"[{run_dir.name}] seed {config.train.seed}{ink}: {states[run_dir]}, training")
                train_member(config, run_dir)
                total.update(advance=1)
    else:
        train_in_processes(work, jobs, cuda_count, log)
    close_parent(base.train.log, parent, base.train.log_uri)
    extra = {"member_splits": True} if member_splits else None
    names = [run_dir.name for run_dir in configs]
    return measure_and_record(out, base, names, tta, log, extra, engine, device)


def split_of(config: RunConfig, member_splits: bool = False) -> dict:
    """What decides a run's validation split (data.load_train_val): runs that agree on it all held out the same
    validation images; with `member_splits`, its kind (source and sizes), each run drawing its own."""
    data = config.data
    seed = data.split_seed if data.split_seed is not None else config.train.seed
    if data.val_size == 0 and data.train_size is None:
        seed = None  # every image is trained on, whatever the seed: final models of any seeds may be ensembled
    if member_splits:
        seed = None  # each draws its own split: only its kind must agree
    return {"source": data.source, "val_size": data.val_size, "train_size": data.train_size, "split_seed": seed}


def assemble_ensemble(
    runs: list,
    out: str | Path,
    tta: bool = False,
    force: bool = False,
    log=print,
    member_splits: bool = False,
    engine: str = "auto",
) -> dict:
    """An ensemble of finished runs trained apart, each copied into `out` as member-i, then measured as any other.
    They must share one validation split: otherwise the ensemble's validation figure would count images that some
    member trained on, and `distill` would hand the student a teacher that saw its validation images. With
    `member_splits` their split seeds may differ (all else the same), and the validation figure is out of bag."""
    runs = [Path(run) for run in runs]
    check_engine(engine)
    if len(runs) < 2:
        raise DigitlabError("ensemble --from: give at least two run folders")
    configs = []
    for run in runs:
        if not (run / METRICS).is_file() or not (run / MODEL).is_file():
            raise DigitlabError(f"{run}: not a finished run folder (expected {MODEL} and {METRICS})")
        configs.append(load_checkpoint(run / MODEL)[1])
    splits = [split_of(config, member_splits) for config in configs]
    if member_splits and splits[0]["val_size"] == 0:
        raise DigitlabError(f"{runs[0]}: trained without a validation split (--val-size 0); --member-splits "
                            "assembles runs that each held out their own")  # fmt: skip
    for run, split in zip(runs[1:], splits[1:]):
        if split != splits[0]:
            changed = ", ".join(
                f"{key} {splits[0][key]} -> {split[key]}" for key in split if split[key] != splits[0][key]
            )
            both_final = split["split_seed"] is None and splits[0]["split_seed"] is None and not member_splits
            if both_final:  # the data differ
                raise DigitlabError(f"{run}: trained on other data than {runs[0]} ({changed}); final models "
                                    "(--val-size 0) of any seeds make an ensemble, of one data set (the same "
                                    "--data)")  # fmt: skip
            raise DigitlabError(f"{run}: another validation split than {runs[0]}'s ({changed}); an ensemble's members "
                                "must share one (train them with the same --data, --val-size, --train-size and "
                                "--split-seed), or differ only in --split-seed with --member-splits")  # fmt: skip
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise DigitlabError(f"{out} exists and is not empty: pass --force to replace it, or pick another --out")
        remove_run(out)  # only a recognisable digitlab folder
    out.mkdir(parents=True, exist_ok=True)
    names = [f"member-{i}" for i in range(len(runs))]
    for name, run in zip(names, runs):
        partial = out / f".{name}.partial"  # a copy cut short never looks like a member
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(run, partial)
        partial.rename(out / name)
        log(f"[{name}] {run}")
    extra = {"assembled_from": [str(run) for run in runs], **({"member_splits": True} if member_splits else {})}
    return measure_and_record(out, configs[0], names, tta, log, extra, engine)


def measure_and_record(
    out: Path, base: RunConfig, names: list[str], tta: bool, log, extra=None, engine="auto", device="auto"
) -> dict:
    """Write the manifest, measure members and ensemble (minutes for large members on a CPU: `measure`), report."""
    manifest = {"members": names, "tta": tta, "config": to_dict(base), **(extra or {})}
    write_json(out / MANIFEST, manifest)
    result = measure(out, member_config(base, 0), engine, device)
    write_json(out / MANIFEST, {**manifest, "metrics": result})
    for m in result["members"]:
        log(
            f"  {m['name']}: validation {percent(m['val_accuracy'])}, test {percent(m['test_accuracy'])} "
            f"(with TTA: {percent(m['val_accuracy_tta'])}, {percent(m['test_accuracy_tta'])})"
        )
    bagged = result.get("val_out_of_bag_images")  # members with their own splits: each image by those holding it out
    bag = f" (out of bag, {bagged:,} images)" if bagged else ""
    log(
        f"ensemble of {len(names)} ({result['engine']}, {result['device']}): validation "
        f"{percent(result['val_accuracy'])}{bag}, test "
        f"{percent(result['test_accuracy'])}; with TTA: {percent(result['val_accuracy_tta'])}, "
        f"{percent(result['test_accuracy_tta'])}"
        f"{' (TTA is on for predict and serve)' if tta else ''}\n"
        f"gain over the members' mean: validation {points(result['val_gain'])}, test "
        f"{points(result['test_gain'])}\nensemble saved in {out}"
    )
    return result


def measure(folder: Path, config: RunConfig, engine: str = "auto", device: str = "auto") -> dict:
    """Each member's and the ensemble's validation and test accuracy, without TTA (`test_accuracy`) and with it
    (`test_accuracy_tta`), whatever the manifest's switch (which only says what predict and serve do). Members
    with their own splits are each validated on their own, the ensemble out of bag (`out_of_bag`).

    `engine` runs the members (engines.py), on `device` ('auto': a GPU when there is one, where the 'auto' engine
    picks PyTorch; on a CPU it picks ONNX Runtime when installed). Three M3 final models measured on a 2-core AMX
    Xeon (benchmarks/bench_ensemble_measure.py, docs/results-2026-12-06f): fp32 PyTorch 165 s, the engine of every
    figure recorded before; ONNX Runtime 1.13x faster, bf16 PyTorch 5.3x, neither changing one of 30,000 member
    predictions there (bf16 may elsewhere: it is never the default)."""
    device = resolve_device(device).type
    ensemble = EnsembleEngine(folder, engine=engine, device=device, tta=False)
    manifest = read_manifest(folder)
    names, member_splits = manifest["members"], manifest.get("member_splits", False)
    member_configs = [checkpoint_config(model_path(folder / name)) for name in names]
    # digits[split][member]: the images each member is measured on (the same for all, unless their splits differ)
    full = load_source(config.data.source, "train", config.data.data_dir)
    split_configs = member_configs if member_splits else [config]  # a shared split is drawn once
    indices = [split_indices(c.data, full.labels, c.train.seed)[1] for c in split_configs]
    val = [full.subset(index) for index in indices]
    digits = {"val": val if member_splits else val * len(names), "test": [load_test(config.data)] * len(names)}
    # probabilities[split][member][view]: each computed once, then averaged in every combination reported. A member
    # trained on mirrored images also gets the mirrored views (as its TTAEngine does in predict and serve)
    mirrors = [mirrored_in_training(c.augment) for c in member_configs]
    probabilities = {
        split: [[view_probabilities(member, view) for view in member_views(sets[m], mirrors[m])]
                for m, member in enumerate(ensemble.members)]
        for split, sets in digits.items()
    }  # fmt: skip
    engines = "/".join(dict.fromkeys(member.name for member in ensemble.members))  # 'auto' may fall back per member
    result = {"engine": engines, "device": device, "members": [{"name": name} for name in names]}
    for split in digits:
        for tta, suffix in ((False, ""), (True, "_tta")):

            def averaged(members, tta=tta):
                return average([p if tta else p[:1] for p in members])

            for m, row in enumerate(result["members"]):
                row[f"{split}_accuracy{suffix}"] = accuracy(averaged(probabilities[split][m : m + 1]), digits[split][m])
            if split == "val" and member_splits:
                result[f"val_accuracy{suffix}"], result["val_out_of_bag_images"] = out_of_bag(
                    [averaged([p]) for p in probabilities["val"]], indices, full
                )
            else:
                result[f"{split}_accuracy{suffix}"] = accuracy(averaged(probabilities[split]), digits[split][0])
            members_mean = float(np.mean([row[f"{split}_accuracy{suffix}"] for row in result["members"]]))
            result[f"{split}_members_mean{suffix}"] = members_mean  # what the ensemble's gain is measured against
            result[f"{split}_gain{suffix}"] = result[f"{split}_accuracy{suffix}"] - members_mean
    return result


def member_views(digits, mirror: bool) -> list[torch.Tensor | None]:
    """A member's test-time views of `digits` ([None] for an empty split: final models have no validation)."""
    return tta_views(digits.images, mirror) if digits is not None and len(digits) else [None]


def out_of_bag(probabilities: list[np.ndarray | None], indices: list[np.ndarray], full) -> tuple[float, int]:
    """The accuracy over the images some member held out, each scored by the mean probabilities of the members that
    held it out (the others trained on it), and how many images that is."""
    total = np.zeros((len(full), probabilities[0].shape[1]), dtype=np.float64)
    count = np.zeros(len(full), dtype=np.int64)
    for p, index in zip(probabilities, indices):
        total[index] += p
        count[index] += 1
    scored = np.flatnonzero(count)
    mean = (total[scored] / count[scored, None]).astype(np.float32)
    return accuracy(mean, full.subset(scored)), len(scored)


def view_probabilities(member, view: torch.Tensor | None) -> np.ndarray | None:
    return None if view is None else np.asarray(member.predict_proba(view), dtype=np.float32)


def average(nested: list[list[np.ndarray | None]]) -> np.ndarray | None:
    """The members' mean of each member's mean over its views (members may have 5 views or 10)."""
    if nested[0][0] is None:
        return None
    return sum(sum(views) / len(views) for views in nested) / len(nested)


def accuracy(probabilities: np.ndarray | None, digits) -> float:
    if probabilities is None:
        return float("nan")
    return metrics_from_logits(torch.from_numpy(probabilities).clamp_min(1e-12).log(), digits.labels)["accuracy"]


def percent(value: float) -> str:
    """A share as printed in the log; "-" where the split is empty (final models have no validation)."""
    return "-" if math.isnan(value) else f"{value:.2%}"


def points(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:+.2f} points"
