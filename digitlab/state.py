"""The state of one training run: opened fresh (a new run folder, config.json, seeded weights) or restored from
last.safetensors, and saved back there.

`open_run` builds a `Run`: the model (and its DDP wrapper under torchrun), the optimizer, the weight average
(`--ema`), the data on the device, the training targets (labels, or label/teacher mixes for a distilled run), the
history so far and where an interrupted epoch stopped; and it holds the run folder (runs.lock_run) for as long as
the `Run` is used as a `with` block, so that no other process trains or removes the folder meanwhile. `save_last`
writes everything `--resume` needs. The loop that moves a `Run` forward is train.py's.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .checkpoint import (
    checkpoint_config,
    environment,
    load_checkpoint,
    load_teacher,
    restore_optimizer,
    save_checkpoint,
    save_teacher,
)
from .config import RunConfig, to_dict
from .data import Digits, check_recorded_source, load_test, load_train_val
from .distributed import Processes
from .engines import EnsembleEngine, load_engine
from .errors import DigitlabError
from .evaluate import resolve_device
from .models import build_model, summary
from .precision import choose_autocast
from .runs import CONFIG, LAST, TEACHER, differences, lock_run, new_run_dir, write_json
from .tracking import NullTracker, open_tracker


def build_optimizer(model: torch.nn.Module, config) -> torch.optim.Optimizer:
    """The training config's optimizer over the model's parameters (already on their device). PyTorch's fused
    kernels where it has them (CPU, CUDA): one pass over each parameter where the default for-loop makes about ten,
    the same update to float rounding (about 1e-7). The reference CNN's Adam step on a 2-core Zen 3 EPYC: 0.44-0.61
    ms fused, 2.4-3.2 ms as the for-loop; its training step at batch 64 1.064x as fast (docs/results-2026-12-07b).
    A resumed run keeps the kernels its checkpoint was saved with."""
    parameters = list(model.parameters())
    fused = True if all(p.device.type in ("cpu", "cuda") for p in parameters) else None
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            parameters, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay, fused=fused
        )
    optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(parameters, lr=config.lr, weight_decay=config.weight_decay, fused=fused)


def selection_key(record: dict) -> tuple:
    """Validation accuracy, ties broken by validation loss: how the kept model is chosen."""
    return record["val_accuracy"], -record["val_loss"]


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
    autocast: torch.dtype | None = None  # bf16 autocast, or None for fp32 (precision.py)
    precision: str = ""  # why, in words: for the log and metrics.json
    curves_drawn: float = field(default_factory=time.perf_counter)  # when curves.png was last drawn (train.py)
    lock: object = None  # the run folder held for this process (runs.lock_run; rank 0): released on leaving `with`
    best: dict | None = field(init=False)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        if self.lock is not None:
            self.lock.close()
            self.lock = None

    def __post_init__(self):
        self.images = self.train_set.images.to(self.device)  # (N, 1, 28, 28) uint8, the whole set on the device
        self.labels = self.train_set.labels.to(self.device)
        self.targets = training_targets(self.config, self.train_set, self.run_dir).to(self.device)  # (N,) or (N, 10)
        taught_per_batch = self.config.distill.consistent and self.config.distill.teacher is not None
        self.teacher = BatchTeacher(self.config, self.device) if taught_per_batch else None
        self.global_batch = self.config.train.batch_size * self.processes.world  # torchrun: batch x processes
        self.steps_per_epoch = math.ceil(len(self.images) / self.global_batch)
        self.total_steps = self.steps_per_epoch * self.config.train.epochs
        self.best = max(self.history, key=selection_key, default=None)

    @property
    def kept(self) -> torch.nn.Module:
        """What validation sees and model.safetensors keeps: the weight average when there is one."""
        return self.model if self.averaged is None else self.averaged.module

    def batch_targets(self, batch: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """What the loss compares the logits of images `batch`, augmented into `x`, with: the stored targets, or
        under consistent teaching the label/teacher mix for exactly these augmented images."""
        if self.teacher is None:
            return self.targets[batch]
        return self.teacher(x, self.labels[batch], self.autocast)

    def update_average(self) -> None:
        if self.averaged is not None:
            self.averaged.update_parameters(self.model)


def weight_average(model: torch.nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of the weights and the BN statistics (`use_buffers`: the average's BN layers
    carry averaged running statistics, so it needs no extra pass over the data); None when decay is 0."""
    if decay == 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def stored_teacher(config: RunConfig) -> bool:
    """Whether the run trains on teacher probabilities computed once and kept in its folder (distill.py)."""
    return config.distill.teacher is not None and not config.distill.consistent


def training_targets(config: RunConfig, train_set: Digits, run_dir: Path) -> torch.Tensor:
    """What the loss compares the logits with: the labels (N,); for a distilled run (distill.py) the mix
    (1 - weight) * one_hot(label) + weight * p_teacher (N, classes), the teacher's share read from the run folder
    (under consistent teaching the mix is made per batch: `BatchTeacher`)."""
    if not stored_teacher(config):
        return train_set.labels
    teacher = load_teacher(run_dir / TEACHER, config.distill.teacher, len(train_set))
    return label_teacher_mix(train_set.labels, teacher, config.distill.weight)


def label_teacher_mix(labels: torch.Tensor, probabilities: torch.Tensor, weight: float) -> torch.Tensor:
    """(1 - weight) * one_hot(label) + weight * p_teacher: a distilled run's training target, (N, classes)."""
    return (1 - weight) * F.one_hot(labels, probabilities.shape[1]).float() + weight * probabilities


class BatchTeacher:
    """The teacher of a consistently taught run, on the training device: for each augmented batch, the mix
    (1 - weight) * one_hot(label) + weight * p_teacher(augmented images), an ensemble's members averaged."""

    def __init__(self, config: RunConfig, device: torch.device):
        teacher = load_engine(config.distill.teacher, "torch", str(device), tta=False)
        members = teacher.members if isinstance(teacher, EnsembleEngine) else [teacher]
        self.models = [member.model.eval() for member in members]
        self.weight = config.distill.weight

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, labels: torch.Tensor, autocast: torch.dtype | None) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            probabilities = sum(torch.softmax(model(x).float(), 1) for model in self.models) / len(self.models)
        return label_teacher_mix(labels, probabilities, self.weight)  # (B, classes)


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep the memory a training step frees for the next step; True where it took.

    Each step allocates and frees the same activations, several MB each. glibc hands out blocks above its mmap
    threshold as fresh pages and returns the free top of its heap to the kernel, so a step can page-fault and zero
    its activations afresh: per step, 2,700-3,600 minor faults for the reference CNN at batch 64, 5,100-5,300 at
    batch 128, 9,400-11,500 for the stacked CNN, almost none for the compact CNN, whose blocks glibc's own
    adaptive threshold keeps (2-core AMD EPYC, 2026-12-07). With the mmap threshold at its 64-bit maximum (32 MiB)
    and the trim threshold at 1 GiB they fall to about none, and one-epoch commands ran 1.13x (`digitlab train`)
    and 1.37x (`--recipe robust`) as fast (medians of six and four interleaved runs, peak memory +5-7 %; README,
    Results): what PyTorch's tuning guide gets from jemalloc or TCMalloc. A process setting, made by `open_run`;
    no effect, and False, off glibc (macOS, Windows, musl)."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))


def open_run(config: RunConfig, out, resume, log, teacher: torch.Tensor | None = None) -> Run:
    """A fresh run (new folder, seeded weights, config.json written) or the run in `resume` continued from
    last.safetensors with the same config; under torchrun, the process group joined and the model wrapped in DDP.
    The run folder is held for this process from before anything in it is read or written (`Run.lock`)."""
    with contextlib.ExitStack() as held:  # the folder's lock: let go at once should opening fail after taking it
        run = assemble_run(config, out, resume, log, teacher, held)
        run.lock = held.pop_all()  # from here the Run holds it, until train's `with` block ends
        return run


def assemble_run(config: RunConfig, out, resume, log, teacher, held: contextlib.ExitStack) -> Run:
    started = time.perf_counter()  # elapsed_s in the history counts from here: data loading included
    processes = Processes.from_env(config.train.device)
    log = log if processes.main else (lambda *_: None)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    keep_freed_memory()
    device = processes.device(resolve_device(config.train.device))
    train_set, val_set = load_train_val(config.data, config.train.seed)
    if resume is None:
        run_dir, model, info, tensors = start_fresh(config, out, train_set, val_set, processes, teacher, held)
    else:
        run_dir = Path(resume)
        hold(held, run_dir, processes)  # before reading: no other process may be training it
        model, info, tensors = load_resumable(run_dir, config)
    model = model.to(device, memory_format=torch.channels_last)
    autocast, precision = run_precision(config, model, device, processes, info if resume is not None else None)
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
        f"({config.data.source}{' + typed digits' if config.data.typed_digits else ''}"
        f"{' + handwriting-font digits' if config.data.handwriting_fonts else ''}"
        f"{'; validation size chosen automatically' if config.data.val_size is None else ''}"
        f"); device: {device}, {torch.get_num_threads()} CPU threads; precision {precision}"
        + (f"; {processes.world} processes (torchrun), global batch {config.train.batch_size * processes.world}"
           if processes.active else ""))  # fmt: skip
    test_set = load_test(config.data) if config.train.trace_test else None
    tc = config.train
    tracker = open_tracker(tc.log, run_dir, to_dict(config), tc.log_uri, tc.log_parent) if processes.main else None
    return Run(run_dir, config, model, forward, processes, optimizer, device, train_set, val_set, test_set, history,
               resume_point, started, tracker or NullTracker(), averaged=averaged, autocast=autocast,
               precision=precision)  # fmt: skip


def hold(held: contextlib.ExitStack, run_dir: Path, processes: Processes) -> None:
    """Take the run folder's lock (rank 0: torchrun's other processes share the folder) into `held`."""
    lock = lock_run(run_dir) if processes.main else None
    if lock is not None:
        held.callback(lock.close)


def run_precision(config: RunConfig, model, device, processes: Processes, resumed: dict | None):
    """(autocast dtype or None, why): what a resumed run's checkpoint records, else precision.py's choice, made by
    rank 0 under torchrun so that every process computes alike."""
    if resumed is not None and "autocast" in resumed:
        recorded = resumed["autocast"]
        return (torch.bfloat16 if recorded == "bf16" else None), f"{recorded or 'fp32'}, as the run began"
    return processes.broadcast(choose_autocast(config, model, device) if processes.main else None)


def start_fresh(config: RunConfig, out, train_set: Digits, val_set: Digits, processes: Processes, teacher, held):
    """A new run folder (rank 0 creates it and writes config.json, and a distilled run's teacher probabilities; the
    others learn its name) and a seeded model holding the training pixels' mean and standard deviation (the seed's
    norm_input)."""
    if stored_teacher(config) != (teacher is not None):
        raise DigitlabError("a distilled run needs its teacher's probabilities: train it with `digitlab distill`")
    run_dir = Path(processes.broadcast(str(new_run_dir(out)) if processes.main else None))
    hold(held, run_dir, processes)  # before config.json: a folder with a config and no lock may be claimed
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
    recorded = checkpoint_config(Path(run_dir) / LAST)
    check_recorded_source(recorded.data, source, run_dir, "to resume it")
    return dataclasses.replace(recorded, data=dataclasses.replace(recorded.data, data_dir=data_dir))


def save_last(run: Run, epochs_done: int, in_epoch: dict | None = None, rng: dict | None = None) -> None:
    meta = {"epoch": epochs_done, "history": run.history, "autocast": "bf16" if run.autocast else None,
            **({"in_epoch": in_epoch} if in_epoch else {})}  # fmt: skip
    average = {} if run.averaged is None else {f"ema.{k}": v for k, v in run.averaged.state_dict().items()}
    save_checkpoint(run.run_dir / LAST, run.model, run.config, meta, optimizer=run.optimizer, rng=rng, extra=average)
