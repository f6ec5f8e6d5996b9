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

import json
import math
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .augment import augment_batch, make_generator
from .checkpoint import environment, load_checkpoint, restore_optimizer, save_checkpoint
from .config import RunConfig, to_dict
from .data import Digits, load_test, load_train_val
from .errors import DigitlabError
from .evaluate import evaluate, resolve_device
from .formats import atomic_write
from .models import build_model, summary
from .plots import plot_history


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
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True,
                               weight_decay=config.weight_decay)
    optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """Independent seeds per (run seed, epoch, stream) so each epoch's randomness stands on its own."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


class Progress:
    """A one-line live progress bar on a terminal; silent elsewhere (the epoch lines are printed anyway)."""

    def __init__(self, total: int, label: str):
        self.total, self.label, self.live = total, label, sys.stderr.isatty()
        self.start = self.last = time.perf_counter()

    def update(self, done: int, images: int, loss: float) -> None:
        now = time.perf_counter()
        if not self.live or (now - self.last < 0.25 and done < self.total):
            return
        self.last = now
        rate = images / max(now - self.start, 1e-9)
        eta = (self.total - done) * (now - self.start) / max(done, 1)
        bar = "#" * int(24 * done / self.total)
        sys.stderr.write(f"\r{self.label} [{bar:<24}] {done}/{self.total} loss {loss:.4f} "
                         f"{rate:,.0f} img/s eta {eta:4.0f}s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.live:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


def overfitting(history: list[dict], patience: int) -> bool:
    """True when validation loss rose and training loss fell over each of the last `patience` epochs."""
    if len(history) <= patience:
        return False
    recent = history[-patience - 1:]
    return all(b["val_loss"] > a["val_loss"] and b["train_loss"] < a["train_loss"] for a, b in zip(recent, recent[1:]))


def write_json(path: Path, data) -> None:
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2)


def write_history(run_dir: Path, history: list[dict]) -> None:
    write_json(run_dir / "history.json", history)
    columns = list(history[0])
    lines = [",".join(columns)] + [",".join(f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c])
                                            for c in columns) for row in history]
    with atomic_write(run_dir / "history.csv", "w") as f:
        f.write("\n".join(lines) + "\n")
    plot_history(history, run_dir / "curves.png")


def new_run_dir(out: str | Path | None) -> Path:
    if out is None:
        out = Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
        while out.exists():
            out = out.with_name(out.name + "-1")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DigitlabError(f"{out} already exists and is not an empty folder: pick another --out, or --resume {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DigitlabError(f"cannot create run folder {out}: {e.strerror or e}") from None
    return out


class Interrupted(DigitlabError):
    """Training stopped on Ctrl-C after saving a checkpoint; the CLI exits with code 130."""


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


def train(config: RunConfig, out: str | Path | None = None, resume: str | Path | None = None,
          log=print) -> dict:
    """Train per `config` into a new run folder (or continue the run in `resume`); returns the final metrics."""
    started = time.perf_counter()  # elapsed_s in the history counts from here: data loading included
    history: list[dict] = []
    progress_state: dict = {}  # where an interrupted epoch stopped: step, sums and random generator states
    if resume is not None:
        run_dir = Path(resume)
        model, config, info, tensors = load_checkpoint(run_dir / "last.safetensors")
        history = info["history"]  # kept in the checkpoint itself: history.json may be a step behind
        progress_state = {**info.get("in_epoch", {}), **{k: v for k, v in tensors.items() if k.startswith("rng.")}}
    else:
        run_dir = new_run_dir(out)
        torch.manual_seed(config.train.seed)  # weight initialisation
        model = build_model(config.model)
    tc = config.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = resolve_device(tc.device)

    train_set, val_set = load_train_val(config.data, tc.seed)
    if resume is None:  # the seed's norm_input: mean and std of the training pixels, kept in the model
        pixels = train_set.images.float()
        model.normalize.mean.fill_(pixels.mean().item())
        model.normalize.std.fill_(pixels.std().item())
        write_json(run_dir / "config.json", {"config": to_dict(config), "env": environment()})
    model = model.to(device, memory_format=torch.channels_last)
    optimizer = build_optimizer(model, tc)
    if resume is not None:
        restore_optimizer(optimizer, tensors, info)
    log(summary(model))
    log(f"run folder: {run_dir}\ndata: {len(train_set):,} training, {len(val_set):,} validation images "
        f"({config.data.source}); device: {device}, {torch.get_num_threads()} CPU threads")

    images = train_set.images.to(device)
    labels = train_set.labels.to(device)
    steps_per_epoch = math.ceil(len(images) / tc.batch_size)
    total_steps = steps_per_epoch * tc.epochs
    best = max(history, key=lambda h: (h["val_accuracy"], -h["val_loss"]), default=None)
    test_set = load_test(config.data) if tc.trace_test else None
    traced_seconds = 0.0  # time spent on trace_test evaluations, left out of elapsed_s
    # a resumed run continues the clock where the checkpoint stopped
    started -= history[-1].get("elapsed_s", 0.0) if history else 0.0

    def save_last(epochs_done: int, in_epoch: dict | None = None, rng: dict | None = None) -> None:
        meta = {"epoch": epochs_done, "history": history, **({"in_epoch": in_epoch} if in_epoch else {})}
        save_checkpoint(run_dir / "last.safetensors", model, config, meta, optimizer=optimizer, rng=rng)

    with StopOnSigint() as stop:
        for epoch in range(len(history) + 1, tc.epochs + 1):
            model.train()
            shuffle = torch.Generator().manual_seed(epoch_seed(tc.seed, epoch, 0))
            augment_rng = make_generator(epoch_seed(tc.seed, epoch, 1), device)
            torch.manual_seed(epoch_seed(tc.seed, epoch, 2))  # dropout
            order = torch.randperm(len(images), generator=shuffle).to(device)
            first_step = progress_state.get("step", 0)
            loss_sum = torch.tensor(progress_state.get("loss_sum", 0.0), device=device)
            correct = torch.tensor(progress_state.get("correct", 0), device=device)
            if first_step:  # resuming inside this epoch: the random streams continue where they stopped
                augment_rng.set_state(progress_state["rng.augment"].to(augment_rng.get_state().device))
                torch.set_rng_state(progress_state["rng.torch"])
                if device.type == "cuda":
                    torch.cuda.set_rng_state(progress_state["rng.cuda"])
            progress_state = {}
            progress = Progress(steps_per_epoch, f"epoch {epoch}/{tc.epochs}")
            start = time.perf_counter()
            for step, batch in enumerate(order.split(tc.batch_size)):
                if step < first_step:
                    continue
                lr = lr_at((epoch - 1) * steps_per_epoch + step, total_steps, tc)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x = augment_batch(images[batch].float(), config.augment, augment_rng)
                x = x.contiguous(memory_format=torch.channels_last)  # (B, 1, 28, 28)
                y = labels[batch]
                logits = model(x)
                loss = F.cross_entropy(logits, y, label_smoothing=tc.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * len(batch)
                correct += (logits.argmax(1) == y).sum()
                progress.update(step + 1, (step + 1 - first_step) * tc.batch_size,
                                loss.item() if progress.live else 0.0)
                steps_done = step + 1
                periodic = tc.checkpoint_every and ((epoch - 1) * steps_per_epoch + steps_done) % tc.checkpoint_every
                if (stop.requested or periodic == 0) and steps_done < steps_per_epoch:
                    rng = {"augment": augment_rng.get_state(), "torch": torch.get_rng_state()}
                    if device.type == "cuda":
                        rng["cuda"] = torch.cuda.get_rng_state()
                    save_last(epoch - 1, {"step": steps_done, "loss_sum": loss_sum.item(),
                                          "correct": int(correct.item())}, rng)
                    if stop.requested:
                        progress.close()
                        raise Interrupted(f"interrupted in epoch {epoch}, step {steps_done}/{steps_per_epoch}; "
                                          f"checkpoint saved. Resume with:\n  digitlab train --resume {run_dir}")
            train_seconds = time.perf_counter() - start
            progress.close()

            val = evaluate(model, val_set) if len(val_set) else {"loss": float("nan"), "accuracy": float("nan")}
            record = {"epoch": epoch, "train_loss": loss_sum.item() / len(images),
                      "train_accuracy": correct.item() / len(images), "val_loss": val["loss"],
                      "val_accuracy": val["accuracy"], "lr": lr, "seconds": train_seconds,
                      "images_per_s": (steps_per_epoch - first_step) * tc.batch_size / train_seconds}
            if tc.eval_train:  # batches seen augmented with dropout on understate the fit; this is the clean figure
                clean = evaluate(model, train_set)
                record.update(train_eval_loss=clean["loss"], train_eval_accuracy=clean["accuracy"])
            history.append(record)
            log(f"epoch {epoch:>3}/{tc.epochs}  train loss {record['train_loss']:.4f} "
                f"acc {record['train_accuracy']:.2%}  val loss {record['val_loss']:.4f} "
                f"acc {record['val_accuracy']:.2%}  {train_seconds:.1f} s ({record['images_per_s']:,.0f} img/s)")
            if best is None or not len(val_set) or \
                    (record["val_accuracy"], -record["val_loss"]) > (best["val_accuracy"], -best["val_loss"]):
                best = record
                save_checkpoint(run_dir / "model.safetensors", model, config, {"epoch": epoch, "selected_by": "val"})
            record["elapsed_s"] = time.perf_counter() - started - traced_seconds
            if test_set is not None:  # observed only: the choice above never sees the test set
                trace_start = time.perf_counter()
                record["selected_test_accuracy"] = evaluate(model, test_set)["accuracy"] if best is record \
                    else best["selected_test_accuracy"]
                traced_seconds += time.perf_counter() - trace_start
            save_last(epoch)
            write_history(run_dir, history)
            if overfitting(history, tc.overfit_patience):
                log(f"warning: overfitting - validation loss has risen for {tc.overfit_patience} epochs while "
                    "training loss fell; more regularisation (dropout, augmentation) or fewer epochs may help")
            if stop.requested:
                raise Interrupted(f"interrupted after epoch {epoch}; checkpoint saved. Resume with:\n"
                                  f"  digitlab train --resume {run_dir}")

    return finish(run_dir, history, best, config, device, len(train_set), log)


def finish(run_dir: Path, history: list[dict], best: dict, config: RunConfig, device, train_images: int,
           log) -> dict:
    """Evaluate the validation-chosen model on the test set, once, and write metrics.json."""
    model, _, _, _ = load_checkpoint(run_dir / "model.safetensors", device)
    test_set: Digits | None = load_test(config.data)
    test = evaluate(model, test_set) if test_set is not None else None
    rates = [h["images_per_s"] for h in history]
    metrics = {"best_epoch": best["epoch"], "val_accuracy": best["val_accuracy"], "val_loss": best["val_loss"],
               "test": test, "train_images_per_s_median": float(np.median(rates)),
               "epoch_seconds_median": float(np.median([h["seconds"] for h in history])),
               "train_seconds_total": float(sum(h["seconds"] for h in history)), "train_images": train_images,
               "run_dir": str(run_dir)}
    write_json(run_dir / "metrics.json", metrics)
    log(f"best epoch {best['epoch']}: validation accuracy {best['val_accuracy']:.2%} (loss {best['val_loss']:.4f})")
    if test is not None:
        log(f"test accuracy {test['accuracy']:.2%} ({test['errors']} errors in {test['n']:,}), loss {test['loss']:.4f}")
    else:
        log("test accuracy: n/a (the data source has no labelled test split)")
    log(f"run saved in {run_dir}")
    return metrics

