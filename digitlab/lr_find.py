"""The learning-rate range test (Smith 2017; fastai's `lr_find`): a short run with an exponentially growing rate,
the smoothed loss against the rate, and a suggested peak rate for the one-cycle schedule.

`find_lr(config, out)` builds the config's model and optimizer (weights seeded and the input normalisation measured
as `train` does), then trains `steps` batches of the training set — augmented as the config says — with the rate
growing geometrically from `start_lr` to `end_lr`. The loss is smoothed by an exponential moving average (0.98,
bias-corrected, as fastai does) and the test stops once the smoothed loss exceeds 4x its minimum. The suggestion is
fastai's "valley": in the longest stretch over which the smoothed loss keeps falling, the rate two thirds of the way
down — steep enough to learn fast, short of where the loss turns. Nothing is measured on the validation or test set.

Writes `lr_find.json` (rates, raw and smoothed losses, the suggestion, the config) and `lr_find.png` into `out`;
`digitlab train --lr suggested --lr-find DIR` reads the suggestion back.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from .augment import augment_batch, make_generator
from .config import RunConfig, to_dict
from .data import load_train_val
from .errors import DigitlabError
from .evaluate import resolve_device
from .figures import lr_find_figure
from .files import atomic_write
from .runs import write_json
from .state import build_optimizer, seeded_model
from .train import epoch_seed, set_lr, train_step

RESULT = "lr_find.json"
SMOOTHING = 0.98
DIVERGED = 4.0  # stop once the smoothed loss is this many times its minimum


def valley(losses: list[float]) -> int:
    """Index two thirds of the way down the longest run of falling smoothed loss (a longest decreasing
    subsequence, found in O(n^2): n is a few hundred)."""
    n = len(losses)
    length = [1] * n  # length of the longest decreasing subsequence ending at i
    end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and length[i] < length[j] + 1:
                length[i] = length[j] + 1
        if length[i] > length[end]:
            end = i
    start = end - length[end] + 1
    return min(n - 1, start + round(2 * (end - start) / 3))


def find_lr(config: RunConfig, out: str | Path, steps: int = 200, start_lr: float = 1e-6, end_lr: float = 1.0,
            log=print) -> dict:  # fmt: skip
    """Run the range test for `config`'s model and optimizer; write and return the curve and the suggestion."""
    if steps < 20 or not 0 < start_lr < end_lr:
        raise DigitlabError(f"lr-find: expected at least 20 steps and 0 < start {start_lr:g} < end {end_lr:g}")
    out = Path(out)
    device = resolve_device(config.train.device)
    train_set, _ = load_train_val(config.data, config.train.seed)
    model = seeded_model(config, train_set).to(device, memory_format=torch.channels_last).train()
    optimizer = build_optimizer(model, config.train)
    images, labels = train_set.images.to(device), train_set.labels.to(device)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(epoch_seed(config.train.seed, 0, 9)))
    generator = make_generator(epoch_seed(config.train.seed, 0, 10), device)
    rates, raw, smoothed, average = [], [], [], 0.0
    for step in range(steps):
        lr = set_lr(optimizer, start_lr * (end_lr / start_lr) ** (step / (steps - 1)))
        batch = order.roll(-step * config.train.batch_size)[: config.train.batch_size].to(device)  # wraps around
        x = augment_batch(images[batch].float(), config.augment, generator)
        loss, _ = train_step(model, optimizer, x, labels[batch], config.train.label_smoothing)
        value = loss.item()
        if not math.isfinite(value):
            break
        average = SMOOTHING * average + (1 - SMOOTHING) * value
        rates.append(lr), raw.append(value), smoothed.append(average / (1 - SMOOTHING ** (step + 1)))
        if step > 10 and smoothed[-1] > DIVERGED * min(smoothed):
            break
    if len(smoothed) < 10:
        raise DigitlabError("lr-find: the loss diverged at once; lower --lr-find-start")
    suggestion = rates[valley(smoothed)]
    result = {"suggested_lr": suggestion, "min_loss_lr": rates[int(np.argmin(smoothed))], "lrs": rates,
              "losses": raw, "smoothed": smoothed, "config": to_dict(config)}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / RESULT, result)  # a diverged loss (inf, nan) is null
    with atomic_write(out / "lr_find.png") as f:
        f.write(lr_find_figure(rates, smoothed, suggestion))
    log(f"lr-find: {len(rates)} steps from {start_lr:g} to {rates[-1]:.3g}; suggested peak lr {suggestion:.3g} "
        f"(minimum of the smoothed loss at {result['min_loss_lr']:.3g}); saved in {out}")  # fmt: skip
    return result


def suggested_lr(folder: str | Path, config: RunConfig) -> float:
    """The suggestion saved by `find_lr` in `folder`, for a config with the same model and optimizer."""
    path = Path(folder) / RESULT
    try:
        saved = json.loads(path.read_text())
        lr, recorded = float(saved["suggested_lr"]), saved["config"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DigitlabError(f"--lr suggested: no readable {path} ({str(e)[:80]}); run digitlab lr-find first") from None
    for section in ("model", "train"):
        for key in ("arch", "width", "batch_norm", "optimizer", "batch_size"):
            found, here = recorded.get(section, {}).get(key), getattr(getattr(config, section), key, None)
            if found is not None and found != here:
                raise DigitlabError(f"--lr suggested: {path} was found for {section}.{key} = {found!r}, this run has "
                                    f"{here!r}; run lr-find again")  # fmt: skip
    if not (math.isfinite(lr) and 0 < lr <= 10):
        raise DigitlabError(f"--lr suggested: {path} holds the rate {lr!r}")
    return lr
