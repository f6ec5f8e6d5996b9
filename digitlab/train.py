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

Opening a run (fresh or from last.safetensors) and saving its state for `--resume` are state.py's.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import console
from .augment import augment_batch, make_generator
from .checkpoint import load_checkpoint, save_checkpoint
from .config import RunConfig
from .data import load_test
from .errors import DigitlabError, Interrupted
from .evaluate import evaluate
from .figures import confusion_figure, plot_history
from .files import atomic_write
from .runs import CURVES, HISTORY_CSV, HISTORY_JSON, METRICS, MODEL, write_json
from .state import Run, open_run, save_last, selection_key

CURVES_EVERY_S = 30.0  # seconds between redraws of curves.png during training (draw_curves)


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


def write_history(run_dir: Path, history: list[dict]) -> None:
    """history.json and history.csv, rewritten whole after every epoch (curves.png is `draw_curves`')."""
    write_json(run_dir / HISTORY_JSON, history)
    columns = list(history[0])
    lines = [",".join(columns)] + [
        ",".join(f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c]) for c in columns) for row in history
    ]
    with atomic_write(run_dir / HISTORY_CSV, "w") as f:
        f.write("\n".join(lines) + "\n")


def draw_curves(run: Run) -> None:
    """Redraw curves.png from the history. A plot takes 0.2-0.4 s of a 2-core CPU (5-9 % of a `fast` epoch on
    MNIST, more than a whole epoch on a small file), so `record_epoch` redraws it once CURVES_EVERY_S seconds have
    passed since the run opened or was last drawn, and after the last epoch; an interrupted run redraws it as it
    stops."""
    if run.history:
        plot_history(run.history, run.run_dir / CURVES)
        run.curves_drawn = time.perf_counter()


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
    # the run folder is held (runs.lock_run) until the run is finished or stops; the first Ctrl-C stops it between
    # two steps
    with open_run(config, out, resume, log, teacher) as run, StopOnSigint() as stop:
        tc = run.config.train
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
                targets = run.batch_targets(batch, x)  # labels, or label/teacher probability mixes when distilling
                loss, logits = train_step(run.forward, run.optimizer, x, targets, tc.label_smoothing, run.autocast)
                run.update_average()
                epoch.loss_sum += loss * len(batch)
                epoch.correct += (logits.argmax(1) == run.labels[batch]).sum()
                progress.update(step + 1, (step + 1 - epoch.first_step) * run.global_batch, loss)
                save_mid_epoch_if_due(run, epoch, step + 1, stop.requested, progress)
            progress.close()
            end_epoch(run, epoch, log)
            if run.processes.any(stop.requested):
                if run.processes.main:
                    draw_curves(run)
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
    stop_if_diverged(run, epoch, steps_done)  # a diverged model is never saved over the last good checkpoint
    save_mid_epoch(run, epoch, steps_done)
    if stop_requested:
        draw_curves(run)
        progress.close()
        raise Interrupted(f"interrupted in epoch {epoch.number}, step {steps_done}/{run.steps_per_epoch}; "
                          f"checkpoint saved. Resume with:\n  digitlab train --resume {run.run_dir}")  # fmt: skip


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
    stop_if_diverged(run, epoch, run.steps_per_epoch)  # every process sees the same sum: all stop, none waits
    if run.processes.main:
        record_epoch(run, epoch, log)
    run.processes.barrier()


def stop_if_diverged(run: Run, epoch: Epoch, steps_done: int) -> None:
    """Stop a run whose training loss is no longer a finite number (NaN or infinite: the weights diverged) before
    anything of the epoch is saved, rather than train on NaN to the end and keep a model that cannot predict."""
    if math.isfinite(epoch.loss_sum.item()):
        return
    lr = run.config.train.lr
    raise DigitlabError(
        f"training diverged in epoch {epoch.number} (by step {steps_done} of {run.steps_per_epoch}): the training "
        f"loss is no longer a finite number. Nothing was saved from then on; {run.run_dir} keeps what was saved "
        f"before. Resuming would diverge the same way: train again with a lower learning rate (--lr, now "
        f"{lr:g}; digitlab lr-find suggests one)"
    )


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
    validation = f"val loss {record['val_loss']:.4f} acc {record['val_accuracy']:.2%}" if len(run.val_set) else "no val"
    log(
        f"epoch {epoch.number:>3}/{tc.epochs}  train loss {record['train_loss']:.4f} "
        f"acc {record['train_accuracy']:.2%}  {validation}  {seconds:.1f} s ({record['images_per_s']:,.0f} img/s)"
    )
    if run.best is None or not len(run.val_set) or selection_key(record) > selection_key(run.best):
        run.best = record
        chosen = {"epoch": epoch.number, "selected_by": "val" if len(run.val_set) else "last"}  # no split: the last
        save_checkpoint(run.run_dir / MODEL, run.kept, run.config, chosen)
    record["elapsed_s"] = time.perf_counter() - run.started - run.traced_seconds
    if run.test_set is not None:  # observed only: the choice above never sees the test set
        trace_start = time.perf_counter()
        record["selected_test_accuracy"] = (
            evaluate(run.kept, run.test_set)["accuracy"] if run.best is record else run.best["selected_test_accuracy"]
        )
        run.traced_seconds += time.perf_counter() - trace_start
    save_last(run, epoch.number)
    write_history(run.run_dir, run.history)
    if epoch.number == tc.epochs or time.perf_counter() - run.curves_drawn >= CURVES_EVERY_S:
        draw_curves(run)
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
        "autocast": "bf16" if run.autocast else None,  # what --precision auto chose on this machine
        "precision": run.precision,  # and why (precision.py)
        "train_images": len(run.train_set),
        "val_images": len(run.val_set),
    }
    write_json(run.run_dir / METRICS, metrics)
    images = {}
    if run.tracker.takes_images:  # drawing the confusion matrix costs ~0.3 s: only for TensorBoard or MLflow
        images["curves"] = (run.run_dir / CURVES).read_bytes()
        if test is not None:
            images["confusion_matrix"] = confusion_figure(test["confusion_matrix"])
    run.tracker.finish(metrics, images)
    if len(run.val_set):
        log(f"best epoch {best['epoch']}: validation accuracy {best['val_accuracy']:.2%} (loss {best['val_loss']:.4f})")
    else:
        log(f"no validation split: the model of the last epoch ({best['epoch']}) is kept")
    if test is not None:
        log(f"test accuracy {test['accuracy']:.2%} ({test['errors']} errors in {test['n']:,}), loss {test['loss']:.4f}")
    else:
        log("test accuracy: n/a (the data source has no labelled test split)")
    log(f"run saved in {run.run_dir}")
    run.processes.close()
    return metrics
