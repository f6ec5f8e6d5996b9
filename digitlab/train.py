"""Train a model from a `RunConfig`: one plain loop over epochs and batches, a run folder with everything kept.

The run folder holds `config.json` (the resolved config, seed, versions, git commit), `history.csv`/`history.json`
(per-epoch train/validation loss and accuracy), `curves.png`, `model.safetensors` (the weights with the best
validation accuracy, ties broken by validation loss), `last.safetensors` (model, optimizer and progress after the
latest epoch, for `--resume`) and `metrics.json`. The test set is evaluated once, at the end, on the model that
validation chose.

Randomness is derived per epoch from (seed, epoch): the data order, the augmentation draws and dropout. That makes a
CPU run reproducible and lets a resumed run continue exactly where the last finished epoch left off.

Learning rate: `onecycle` warms up linearly from lr/25 to lr over `warmup_frac` of all steps, then decays by a
half-cosine to lr/1e4 (the schedule of Smith & Topin's one-cycle policy, as in PyTorch's OneCycleLR); `cosine` is
the same without warm-up; `constant` keeps lr.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from . import console
from .augment import augment_batch, make_generator
from .checkpoint import (
    environment,
    load_checkpoint,
    load_teacher,
    read_checkpoint,
    restore_optimizer,
    save_checkpoint,
    save_teacher,
)
from .config import RunConfig, from_dict, to_dict
from .data import Digits, load_test, load_train_val
from .datasets import DATASETS
from .distributed import Processes
from .errors import DigitlabError, Interrupted
from .evaluate import evaluate, resolve_device
from .figures import confusion_figure, plot_history
from .formats import atomic_write
from .models import build_model, summary
from .runs import CONFIG, CURVES, HISTORY_CSV, HISTORY_JSON, LAST, METRICS, MODEL, TEACHER, differences, new_run_dir
from .tracking import NullTracker, open_tracker


def lr_at(step: int, total_steps: int, config) -> float:
    """Learning rate for optimizer step `step` (0-based) of `total_steps`."""
    if config.schedule == "constant":
        return config.lr
    warmup = int(config.warmup_frac * total_steps) if config.schedule == "onecycle" else 0
    if step < warmup:
        return config.lr / 25 + (config.lr - config.lr / 25) * step / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    floor = config.lr / 1e4
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(model: torch.nn.Module, config) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
    optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def epoch_seed(seed: int, epoch: int, stream: int | tuple[int, ...]) -> int:
    """Independent seeds per (run seed, epoch, stream) so each epoch's randomness stands on its own."""
    stream = (stream,) if isinstance(stream, int) else stream
    return int(np.random.SeedSequence([seed, epoch, *stream]).generate_state(1)[0])


class Progress:
    """The epoch's live bar (console.bar): steps, loss, images/s and time left, on a terminal only; the epoch lines
    printed after each epoch are the record."""

    def __init__(self, total: int, label: str):
        self.stack = contextlib.ExitStack()
        self.task = self.stack.enter_context(console.bar(label, total, "steps"))
        self.start = self.last = time.perf_counter()

    def update(self, done: int, images: int, loss: torch.Tensor) -> None:
        now = time.perf_counter()
        if not self.task.live or now - self.last < 0.25:
            return  # no .item() here: reading the loss would wait for the device at every step
        self.last = now
        rate = images / max(now - self.start, 1e-9)
        self.task.update(completed=done, note=f"loss {loss.item():.4f}  {rate:,.0f} img/s")

    def close(self) -> None:
        self.stack.close()


def overfitting(history: list[dict], patience: int) -> bool:
    """True when validation loss rose and training loss fell over each of the last `patience` epochs."""
    if len(history) <= patience:
        return False
    recent = history[-patience - 1 :]
    return all(b["val_loss"] > a["val_loss"] and b["train_loss"] < a["train_loss"] for a, b in zip(recent, recent[1:]))


def write_json(path: Path, data) -> None:
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2)


def write_history(run_dir: Path, history: list[dict]) -> None:
    write_json(run_dir / HISTORY_JSON, history)
    columns = list(history[0])
    lines = [",".join(columns)] + [
        ",".join(f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c]) for c in columns) for row in history
    ]
    with atomic_write(run_dir / HISTORY_CSV, "w") as f:
        f.write("\n".join(lines) + "\n")
    plot_history(history, run_dir / CURVES)


class StopOnSigint:
    """Turn the first Ctrl-C into a flag the loop checks between steps (a step is never cut in half); a second
    Ctrl-C interrupts at once. Only the main thread can own signal handlers, so elsewhere this does nothing."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


@dataclass
class Run:
    """What one training run holds while it trains; `open_run` builds it fresh or from last.safetensors."""

    run_dir: Path
    config: RunConfig
    model: torch.nn.Module
    forward: torch.nn.Module  # what the training step calls: the model, or its DDP wrapper under torchrun
    processes: Processes
    optimizer: torch.optim.Optimizer
    device: torch.device
    train_set: Digits
    val_set: Digits
    test_set: Digits | None  # only with trace_test: observed after each epoch, never used to choose
    history: list[dict]
    resume_point: dict  # where an interrupted epoch stopped: step, running sums, random generator states
    started: float  # perf_counter at the start, moved back by the elapsed time of a resumed run
    tracker: object = field(default_factory=NullTracker)  # TensorBoard or MLflow (tracking.py), rank 0 only
    traced_seconds: float = 0.0  # time spent on trace_test evaluations, left out of elapsed_s
    averaged: AveragedModel | None = None  # the EMA of the weights and BN statistics when train.ema > 0
    best: dict | None = field(init=False)

    def __post_init__(self):
        self.images = self.train_set.images.to(self.device)  # (N, 1, 28, 28) uint8, the whole set on the device
        self.labels = self.train_set.labels.to(self.device)
        self.targets = training_targets(self.config, self.train_set, self.run_dir).to(self.device)  # (N,) or (N, 10)
        self.global_batch = self.config.train.batch_size * self.processes.world  # torchrun: batch x processes
        self.steps_per_epoch = math.ceil(len(self.images) / self.global_batch)
        self.total_steps = self.steps_per_epoch * self.config.train.epochs
        self.best = max(self.history, key=selection_key, default=None)
        self.autocast = autocast_dtype(self.config.train.precision, self.device)

    @property
    def kept(self) -> torch.nn.Module:
        """What validation sees and model.safetensors keeps: the weight average when there is one."""
        return self.model if self.averaged is None else self.averaged.module

    def update_average(self) -> None:
        if self.averaged is not None:
            self.averaged.update_parameters(self.model)


def weight_average(model: torch.nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of the weights and the BN statistics (`use_buffers`: the average's BN layers
    carry averaged running statistics, so it needs no extra pass over the data); None when decay is 0."""
    if decay == 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def training_targets(config: RunConfig, train_set: Digits, run_dir: Path) -> torch.Tensor:
    """What the loss compares the logits with: the labels (N,); for a distilled run (distill.py) the mix
    (1 - weight) * one_hot(label) + weight * p_teacher (N, classes), the teacher's share read from the run folder."""
    if config.distill.teacher is None:
        return train_set.labels
    teacher = load_teacher(run_dir / TEACHER, config.distill.teacher, len(train_set))
    one_hot = F.one_hot(train_set.labels, teacher.shape[1]).float()
    return (1 - config.distill.weight) * one_hot + config.distill.weight * teacher


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 where asked, or on CUDA for 'auto' (tensor cores; fp32 master weights); None means plain fp32."""
    use = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return torch.bfloat16 if use else None


@dataclass
class Epoch:
    """One epoch's data order, random streams and running sums (continued from the checkpoint when resuming)."""

    number: int
    order: torch.Tensor
    augment_rng: torch.Generator
    first_step: int
    loss_sum: torch.Tensor
    correct: torch.Tensor
    start: float = field(default_factory=time.perf_counter)
    lr: float = 0.0


def selection_key(record: dict) -> tuple:
    """Validation accuracy, ties broken by validation loss: how the kept model is chosen."""
    return record["val_accuracy"], -record["val_loss"]


def train(
    config: RunConfig,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    log=print,
    teacher: torch.Tensor | None = None,
) -> dict:
    """Train per `config` into a new run folder (or continue the run in `resume`); returns the final metrics.
    `teacher`: a distilled run's teacher probabilities (N, classes) for its training images (distill.py), kept in
    the run folder for resuming."""
    run = open_run(config, out, resume, log, teacher)
    tc = run.config.train
    with StopOnSigint() as stop:
        for number in range(len(run.history) + 1, tc.epochs + 1):
            run.model.train()
            epoch = start_epoch(run, number)
            progress = Progress(run.steps_per_epoch, f"epoch {number}/{tc.epochs}")
            for step, global_batch in enumerate(epoch.order.split(run.global_batch)):
                if step < epoch.first_step:
                    continue
                batch = run.processes.shard(global_batch)  # this process's part: all of it without torchrun
                epoch.lr = set_lr(run.optimizer, lr_at((number - 1) * run.steps_per_epoch + step, run.total_steps, tc))
                x = augment_batch(run.images[batch].float(), run.config.augment, epoch.augment_rng)  # (B, 1, 28, 28)
                targets = run.targets[batch]  # labels, or label/teacher probability mixes when distilling
                loss, logits = train_step(run.forward, run.optimizer, x, targets, tc.label_smoothing, run.autocast)
                run.update_average()
                epoch.loss_sum += loss * len(batch)
                epoch.correct += (logits.argmax(1) == run.labels[batch]).sum()
                progress.update(step + 1, (step + 1 - epoch.first_step) * run.global_batch, loss)
                save_mid_epoch_if_due(run, epoch, step + 1, stop.requested, progress)
            progress.close()
            end_epoch(run, epoch, log)
            if run.processes.any(stop.requested):
                raise Interrupted(f"interrupted after epoch {number}; checkpoint saved. Resume with:\n"
                                  f"  digitlab train --resume {run.run_dir}")  # fmt: skip
    return finish(run, log)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    label_smoothing: float = 0.0,
    autocast: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The canonical step on one batch: forward, loss, zero_grad, backward, step. `y`: class indices (B,), or
    target probabilities (B, classes) when distilling (distill.py). Returns the detached loss and logits.
    `autocast`: run forward and loss in that dtype (bf16 on CUDA; weights and optimizer stay fp32). The benchmarks
    time exactly this function."""
    with torch.autocast(x.device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
        logits = model(x.contiguous(memory_format=torch.channels_last))
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), logits.detach()


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> float:
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def open_run(config: RunConfig, out, resume, log, teacher: torch.Tensor | None = None) -> Run:
    """A fresh run (new folder, seeded weights, config.json written) or the run in `resume` continued from
    last.safetensors with the same config; under torchrun, the process group joined and the model wrapped in DDP."""
    started = time.perf_counter()  # elapsed_s in the history counts from here: data loading included
    processes = Processes.from_env(config.train.device)
    log = log if processes.main else (lambda *_: None)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    device = processes.device(resolve_device(config.train.device))
    train_set, val_set = load_train_val(config.data, config.train.seed)
    if resume is None:
        run_dir, model, info, tensors = start_fresh(config, out, train_set, val_set, processes, teacher)
    else:
        run_dir = Path(resume)
        model, info, tensors = load_resumable(run_dir, config)
    model = model.to(device, memory_format=torch.channels_last)
    forward = processes.wrap(model, device)
    forward = torch.compile(forward) if config.train.compile else forward  # compiled on the first step
    optimizer = build_optimizer(model, config.train)
    averaged = weight_average(model, config.train.ema)
    history, resume_point = info.get("history", []), {}
    if resume is not None:
        restore_optimizer(optimizer, tensors, info, run_dir / LAST)
        restore_average(averaged, tensors, run_dir / LAST)
        resume_point = {**info.get("in_epoch", {}), **{k: v for k, v in tensors.items() if k.startswith("rng.")}}
        started -= history[-1].get("elapsed_s", 0.0) if history else 0.0  # the clock continues
    log(summary(model))
    log(f"run folder: {run_dir}\ndata: {len(train_set):,} training, {len(val_set):,} validation images "
        f"({config.data.source}{'; validation size chosen automatically' if config.data.val_size is None else ''}"
        f"); device: {device}, {torch.get_num_threads()} CPU threads"
        + (f"; {processes.world} processes (torchrun), global batch {config.train.batch_size * processes.world}"
           if processes.active else ""))  # fmt: skip
    test_set = load_test(config.data) if config.train.trace_test else None
    tc = config.train
    tracker = open_tracker(tc.log, run_dir, to_dict(config), tc.log_uri, tc.log_parent) if processes.main else None
    return Run(run_dir, config, model, forward, processes, optimizer, device, train_set, val_set, test_set, history,
               resume_point, started, tracker or NullTracker(), averaged=averaged)  # fmt: skip


def start_fresh(config: RunConfig, out, train_set: Digits, val_set: Digits, processes: Processes, teacher=None):
    """A new run folder (rank 0 creates it and writes config.json, and a distilled run's teacher probabilities; the
    others learn its name) and a seeded model holding the training pixels' mean and standard deviation (the seed's
    norm_input)."""
    if (config.distill.teacher is None) != (teacher is None):
        raise DigitlabError("a distilled run needs its teacher's probabilities: train it with `digitlab distill`")
    run_dir = Path(processes.broadcast(str(new_run_dir(out)) if processes.main else None))
    model = seeded_model(config, train_set)
    if processes.main:
        split = {"train_images": len(train_set), "val_images": len(val_set)}
        write_json(run_dir / CONFIG, {"config": to_dict(config), "env": environment(), "split": split})
        if teacher is not None:
            save_teacher(run_dir / TEACHER, teacher, config.distill.teacher)
    processes.barrier()  # the folder's files are written before any process reads them
    return run_dir, model, {}, {}


def seeded_model(config: RunConfig, train_set: Digits) -> torch.nn.Module:
    """The config's model with weights seeded by the run's seed and the input normalisation set to the training
    pixels' mean and standard deviation (the seed's norm_input)."""
    torch.manual_seed(config.train.seed)  # weight initialisation
    model = build_model(config.model)
    pixels = train_set.images.float()
    model.normalize.mean.fill_(pixels.mean().item())
    model.normalize.std.fill_(pixels.std().item())
    return model


def load_resumable(run_dir: Path, config: RunConfig):
    """(model, metadata, tensors) of last.safetensors, checked to be resumable with `config`."""
    model, recorded, info, tensors = load_checkpoint(run_dir / LAST)
    changed = differences(to_dict(recorded), to_dict(config))
    if changed:
        raise DigitlabError(f"{run_dir} was trained with another config ({'; '.join(changed[:4])}); resume it "
                            "with its own settings, or train a new run")  # fmt: skip
    for key in ("history", "optimizer_param_groups"):
        if key not in info:
            raise DigitlabError(f"{run_dir / LAST}: metadata has no '{key}': not a resumable checkpoint")
    if info.get("in_epoch", {}).get("step") and not {"rng.augment", "rng.torch"} <= tensors.keys():
        raise DigitlabError(f"{run_dir / LAST}: a mid-epoch checkpoint without its random generator states")
    return model, info, tensors


def restore_average(averaged: AveragedModel | None, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Put the weight average saved in last.safetensors (`ema.` tensors) back."""
    if averaged is None:
        return
    state = {k.removeprefix("ema."): v for k, v in tensors.items() if k.startswith("ema.")}
    if not state:
        raise DigitlabError(f"{path}: no weight average (ema.*) in a checkpoint of a run with ema")
    try:
        averaged.load_state_dict(state)
    except RuntimeError as e:
        raise DigitlabError(f"{path}: the weight average does not fit the model ({str(e)[:120]})") from None


def resume_config(run_dir: str | Path, source: str | None = None, data_dir: str | None = None) -> RunConfig:
    """The config to resume `run_dir` with: the one recorded in its checkpoint, except that data paths stored there
    are not trusted. A run trained on a file resumes only when the user names that file again (`source`); the data
    cache is the default one unless `data_dir` is given."""
    _, info = read_checkpoint(Path(run_dir) / LAST)
    recorded = from_dict(RunConfig, info.get("config"), where=f"{Path(run_dir) / LAST}: config")
    if recorded.data.source not in DATASETS and source != recorded.data.source:
        raise DigitlabError(
            f"{run_dir} was trained on the file {recorded.data.source!r}: pass --data with that path "
            "to resume it (paths stored in a checkpoint are not opened by themselves)"
        )
    return dataclasses.replace(recorded, data=dataclasses.replace(recorded.data, data_dir=data_dir))


def start_epoch(run: Run, number: int) -> Epoch:
    """Seed the epoch's data order, augmentation and dropout from (seed, epoch); continue a resumed epoch's streams."""
    seed = run.config.train.seed
    shuffle = torch.Generator().manual_seed(epoch_seed(seed, number, 0))
    augment_rng = make_generator(epoch_seed(seed, number, run.processes.stream(1)), run.device)
    torch.manual_seed(epoch_seed(seed, number, run.processes.stream(2)))  # dropout
    order = torch.randperm(len(run.images), generator=shuffle).to(run.device)
    point, run.resume_point = run.resume_point, {}
    if point.get("step"):  # resuming inside this epoch: the random streams continue where they stopped
        augment_rng.set_state(point["rng.augment"].to(augment_rng.get_state().device))
        torch.set_rng_state(point["rng.torch"])
        if run.device.type == "cuda":
            torch.cuda.set_rng_state(point["rng.cuda"])
    return Epoch(
        number,
        order,
        augment_rng,
        point.get("step", 0),
        torch.tensor(point.get("loss_sum", 0.0), device=run.device),
        torch.tensor(point.get("correct", 0), device=run.device),
    )


def save_mid_epoch_if_due(run: Run, epoch: Epoch, steps_done: int, stop_requested: bool, progress) -> None:
    """Checkpoint inside an epoch every `checkpoint_every` steps, or at once on Ctrl-C (then stop). Under torchrun
    this waits for the epoch's end (see distributed.py)."""
    every = run.config.train.checkpoint_every
    due = bool(every) and ((epoch.number - 1) * run.steps_per_epoch + steps_done) % every == 0
    if not (due or stop_requested) or steps_done >= run.steps_per_epoch or run.processes.active:
        return
    save_mid_epoch(run, epoch, steps_done)
    if stop_requested:
        progress.close()
        raise Interrupted(f"interrupted in epoch {epoch.number}, step {steps_done}/{run.steps_per_epoch}; "
                          f"checkpoint saved. Resume with:\n  digitlab train --resume {run.run_dir}")  # fmt: skip


def save_last(run: Run, epochs_done: int, in_epoch: dict | None = None, rng: dict | None = None) -> None:
    meta = {"epoch": epochs_done, "history": run.history, **({"in_epoch": in_epoch} if in_epoch else {})}
    average = {} if run.averaged is None else {f"ema.{k}": v for k, v in run.averaged.state_dict().items()}
    save_checkpoint(run.run_dir / LAST, run.model, run.config, meta, optimizer=run.optimizer, rng=rng, extra=average)


def save_mid_epoch(run: Run, epoch: Epoch, steps_done: int) -> None:
    rng = {"augment": epoch.augment_rng.get_state(), "torch": torch.get_rng_state()}
    if run.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state()
    save_last(
        run,
        epoch.number - 1,
        {"step": steps_done, "loss_sum": epoch.loss_sum.item(), "correct": int(epoch.correct.item())},
        rng,
    )


def end_epoch(run: Run, epoch: Epoch, log) -> None:
    """The epoch's training sums over all processes; then rank 0 records the epoch while the others wait."""
    epoch.loss_sum, epoch.correct = run.processes.sum(epoch.loss_sum), run.processes.sum(epoch.correct)
    if run.processes.main:
        record_epoch(run, epoch, log)
    run.processes.barrier()


def record_epoch(run: Run, epoch: Epoch, log) -> None:
    """Validate, record, keep the best model, checkpoint, write the history; warn on overfitting."""
    tc, n = run.config.train, len(run.images)
    seconds = time.perf_counter() - epoch.start
    val = evaluate(run.kept, run.val_set) if len(run.val_set) else {"loss": float("nan"), "accuracy": float("nan")}
    record = {
        "epoch": epoch.number,
        "train_loss": epoch.loss_sum.item() / n,
        "train_accuracy": epoch.correct.item() / n,
        "val_loss": val["loss"],
        "val_accuracy": val["accuracy"],
        "lr": epoch.lr,
        "seconds": seconds,
        "images_per_s": (run.steps_per_epoch - epoch.first_step) * run.global_batch / seconds,
    }
    if tc.eval_train:  # batches seen augmented with dropout on understate the fit; this is the clean figure
        clean = evaluate(run.kept, run.train_set)
        record.update(train_eval_loss=clean["loss"], train_eval_accuracy=clean["accuracy"])
    run.history.append(record)
    run.tracker.log_epoch(record)
    log(
        f"epoch {epoch.number:>3}/{tc.epochs}  train loss {record['train_loss']:.4f} "
        f"acc {record['train_accuracy']:.2%}  val loss {record['val_loss']:.4f} "
        f"acc {record['val_accuracy']:.2%}  {seconds:.1f} s ({record['images_per_s']:,.0f} img/s)"
    )
    if run.best is None or not len(run.val_set) or selection_key(record) > selection_key(run.best):
        run.best = record
        save_checkpoint(run.run_dir / MODEL, run.kept, run.config, {"epoch": epoch.number, "selected_by": "val"})
    record["elapsed_s"] = time.perf_counter() - run.started - run.traced_seconds
    if run.test_set is not None:  # observed only: the choice above never sees the test set
        trace_start = time.perf_counter()
        record["selected_test_accuracy"] = (
            evaluate(run.kept, run.test_set)["accuracy"] if run.best is record else run.best["selected_test_accuracy"]
        )
        run.traced_seconds += time.perf_counter() - trace_start
    save_last(run, epoch.number)
    write_history(run.run_dir, run.history)
    if overfitting(run.history, tc.overfit_patience):
        log(
            f"warning: overfitting - validation loss has risen for {tc.overfit_patience} epochs while "
            "training loss fell; more regularisation (dropout, augmentation) or fewer epochs may help"
        )


def finish(run: Run, log) -> dict:
    """Evaluate the validation-chosen model on the test set, once, and write metrics.json (rank 0)."""
    if not run.processes.main:
        run.processes.close()
        return {}
    model, _, _, _ = load_checkpoint(run.run_dir / MODEL, run.device)
    test_set = load_test(run.config.data)
    test = evaluate(model, test_set) if test_set is not None else None
    history, best = run.history, run.best
    metrics = {
        "best_epoch": best["epoch"],
        "val_accuracy": best["val_accuracy"],
        "val_loss": best["val_loss"],
        "test": test,
        "train_images_per_s_median": float(np.median([h["images_per_s"] for h in history])),
        "epoch_seconds_median": float(np.median([h["seconds"] for h in history])),
        "train_seconds_total": float(sum(h["seconds"] for h in history)),
        "train_images": len(run.train_set),
        "val_images": len(run.val_set),
    }
    write_json(run.run_dir / METRICS, metrics)
    images = {"curves": (run.run_dir / CURVES).read_bytes()}
    if test is not None:
        images["confusion_matrix"] = confusion_figure(test["confusion_matrix"])
    run.tracker.finish(metrics, images)
    log(f"best epoch {best['epoch']}: validation accuracy {best['val_accuracy']:.2%} (loss {best['val_loss']:.4f})")
    if test is not None:
        log(f"test accuracy {test['accuracy']:.2%} ({test['errors']} errors in {test['n']:,}), loss {test['loss']:.4f}")
    else:
        log("test accuracy: n/a (the data source has no labelled test split)")
    log(f"run saved in {run.run_dir}")
    run.processes.close()
    return metrics
