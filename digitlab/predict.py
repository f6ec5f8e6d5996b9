"""Apply a saved model to data: `evaluate_run` (metrics on a labelled set) and `predict_file` (a Kaggle submission).

Both take any target `load_engine` accepts — a run folder, an ensemble folder, a checkpoint or an .onnx file — so
they never know which backend is behind the probabilities. These are what `digitlab evaluate` and `digitlab predict`
call.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from . import console
from .calibration import Rejector
from .checkpoint import checkpoint_config
from .data import Digits, check_recorded_source, load_source, load_train_val
from .datasets import DATASETS
from .engines import load_engine
from .errors import DigitlabError
from .evaluate import metrics_from_logits
from .formats import read_images, write_submission
from .runs import check_output, has_member_splits, model_path, recorded_run

NOT_A_DIGIT = -1  # the Label written for an image answered "not a digit" (predict --reject-below)
CHUNK = 4096  # images per engine call: a bar that moves, at no measurable cost (engines batch 256 inside)


def predict_in_chunks(runner, images: torch.Tensor, label: str) -> np.ndarray:
    """The engine's probabilities (N, classes) as float32, computed CHUNK images at a time under a progress bar."""
    parts = []
    with console.bar(label, len(images), "images") as task:
        for chunk in images.split(CHUNK):
            parts.append(np.asarray(runner.predict_proba(chunk), dtype=np.float32))
            task.update(advance=len(chunk))
    return np.concatenate(parts) if parts else np.zeros((0, 10), dtype=np.float32)


def evaluate_run(
    run: str | Path,
    source: str | None = None,
    split: str = "test",
    device: str = "auto",
    data_dir: str | None = None,
    engine: str = "auto",
    reject_below: str | None = None,
    tta: bool | None = None,
) -> dict:
    """Metrics of a saved model on a labelled set: a dataset name (its official test split by default) or a file;
    split 'val': the run's own validation split (`validation_split`). `source` None: the dataset the model was
    trained on (`trained_dataset`), so a Fashion-MNIST run is measured on clothing, not on digits.
    With `reject_below` (calibration.Rejector), also how many images were answered "not a digit" and the accuracy
    on the rest."""
    runner = load_engine(run, engine, device, tta)
    rejector = Rejector(run, reject_below) if reject_below else None
    if split == "val":
        digits = validation_split(run, source, data_dir)
    else:
        digits = load_source(source or trained_dataset(run), split, data_dir)
    probabilities = torch.from_numpy(predict_in_chunks(runner, digits.images, f"evaluating on {digits.name}"))
    result = metrics_from_logits(probabilities.clamp_min(1e-12).log(), digits.labels)  # log p: softmax(log p) = p
    result = {"run": str(run), "data": digits.name, "engine": runner.identity["engine"],
              "tta": runner.identity.get("tta", False), **result}  # fmt: skip
    if rejector is not None:
        _, rejected = rejector.rejected(digits.images)
        right = probabilities.argmax(1).numpy() == digits.labels.numpy()
        result["rejected"] = int(rejected.sum())
        result["accuracy_accepted"] = float(right[~rejected].mean()) if (~rejected).any() else float("nan")
    return result


def trained_dataset(target: str | Path) -> str:
    """The named dataset (mnist, fashion-mnist) a run, ensemble or checkpoint was trained on; mnist for an .onnx
    file (it records none) and for a run trained on a file (a Kaggle train.csv holds MNIST digits), as before."""
    if Path(target).suffix == ".onnx":
        return "mnist"
    source = checkpoint_config(model_path(recorded_run(target))).data.source
    return source if source in DATASETS else "mnist"


def validation_split(target: str | Path, source: str | None, data_dir: str | None = None) -> Digits:
    """The validation images a run (an ensemble: its first member, the split all members share) held out of its
    training, rebuilt from its recorded data settings and seed. A run trained on a file needs that file named again
    (`source`): paths recorded in a run folder are not opened by themselves."""
    if has_member_splits(target):
        raise DigitlabError(f"{target}: its members held out different validation splits (--member-splits): no "
                            "image is held out by all; ensemble.json has its out-of-bag accuracy")  # fmt: skip
    config = checkpoint_config(model_path(recorded_run(target)))
    check_recorded_source(config.data, source, target, "to evaluate its validation split")
    _, val = load_train_val(dataclasses.replace(config.data, data_dir=data_dir), config.train.seed)
    if not len(val):
        raise DigitlabError(f"{target} was trained without a validation split (--val-size 0): nothing to evaluate")
    return val


def predict_file(
    run: str | Path,
    input_path: str | Path,
    out_path: str | Path,
    device: str = "auto",
    engine: str = "auto",
    force: bool = False,
    reject_below: str | None = None,
    tta: bool | None = None,
) -> dict:
    """Read images (CSV, IDX or .npz), predict, write a Kaggle submission; returns counts and timings. The output
    may not be the input or a file of the run folder, and replaces an existing file only with `force`."""
    out_path = check_output(out_path, inputs=(input_path, run), force=force)
    start = time.perf_counter()
    runner = load_engine(run, engine, device, tta)
    images, _ = read_images(input_path)
    read_done = time.perf_counter()
    pixels = torch.from_numpy(images).unsqueeze(1)
    predictions = predict_in_chunks(runner, pixels, f"predicting {Path(input_path).name}").argmax(1).astype(np.int64)
    rejected = Rejector(run, reject_below).rejected(pixels)[1] if reject_below else np.zeros(len(pixels), bool)
    predictions[rejected] = NOT_A_DIGIT
    predict_done = time.perf_counter()
    write_submission(out_path, predictions)
    end = time.perf_counter()
    return {
        "images": len(images),
        "rejected": int(rejected.sum()),
        "out": str(out_path),
        "engine": runner.name,
        "read_s": read_done - start,
        "predict_s": predict_done - read_done,
        "write_s": end - predict_done,
        "total_s": end - start,
    }
