"""Evaluate and predict: accuracy, loss, per-class accuracy and confusion matrix; Kaggle submissions.

`predict_proba` runs a model over a uint8 image tensor in batches. `evaluate` turns probabilities into metrics.
`evaluate_run` and `predict_file` are what `digitlab evaluate` and `digitlab predict` call.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import Digits, load_source
from .errors import DigitlabError
from .formats import read_images, write_submission


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DigitlabError("--device cuda: no CUDA device is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DigitlabError("--device mps: no MPS device is available")
    return torch.device(name)


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits (N, classes) on the CPU for uint8 images (N, 1, 28, 28); the model stays in its current mode.

    Batches of 256 in channels-last layout: on a 2-core CPU this ran 5,700 img/s against 3,900 in the default
    layout and 3,500 at batch 1,000 (larger batches spill the caches)."""
    device = next(model.parameters()).device
    outputs = []
    for batch in images.split(batch_size):
        x = batch.to(device, non_blocking=True).float().contiguous(memory_format=torch.channels_last)
        outputs.append(model(x).float().cpu())
    return torch.cat(outputs) if outputs else torch.empty(0, 10)


def metrics_from_logits(logits: torch.Tensor, labels: torch.Tensor, num_classes: int = 10) -> dict:
    """Accuracy, mean cross-entropy, per-class accuracy and the confusion matrix (rows: true, columns: predicted)."""
    predicted = logits.argmax(1)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    confusion.index_put_((labels, predicted), torch.ones_like(labels), accumulate=True)
    per_class = confusion.diag().double() / confusion.sum(1).clamp(min=1).double()
    return {
        "n": len(labels),
        "accuracy": (predicted == labels).double().mean().item() if len(labels) else float("nan"),
        "loss": F.cross_entropy(logits, labels).item() if len(labels) else float("nan"),
        "errors": int((predicted != labels).sum()),
        "per_class_accuracy": [round(v, 6) for v in per_class.tolist()],
        "confusion_matrix": confusion.tolist(),
    }


def evaluate(model: torch.nn.Module, digits: Digits, batch_size: int = 256) -> dict:
    was_training = model.training
    model.eval()
    try:
        logits = predict_logits(model, digits.images, batch_size)
    finally:
        model.train(was_training)
    return metrics_from_logits(logits, digits.labels)


def model_path(run: str | Path) -> Path:
    """A run folder's best model, or a checkpoint file given directly."""
    run = Path(run)
    if run.is_dir():
        path = run / "model.safetensors"
        if not path.is_file():
            raise DigitlabError(f"{run}: no model.safetensors in this folder; is it a digitlab run folder?")
        return path
    if not run.exists():
        raise DigitlabError(f"{run}: no such run folder or checkpoint file")
    return run


def evaluate_run(run: str | Path, source: str = "mnist", split: str = "test", device: str = "auto",
                 data_dir: str | None = None, engine: str = "auto") -> dict:
    """Metrics of a saved model (run folder, ensemble folder, checkpoint or .onnx) on a labelled set: a dataset name
    (its official test split by default) or a file."""
    from .export import load_engine
    runner = load_engine(run, engine, device)
    digits = load_source(source, split, data_dir)
    probabilities = torch.from_numpy(np.asarray(runner.predict_proba(digits.images), dtype=np.float32))
    result = metrics_from_logits(probabilities.clamp_min(1e-12).log(), digits.labels)  # log p: softmax(log p) = p
    return {"run": str(run), "data": digits.name, "engine": runner.identity["engine"], **result}


def predict_file(run: str | Path, input_path: str | Path, out_path: str | Path, device: str = "auto",
                 engine: str = "auto") -> dict:
    """Read images (CSV, IDX or .npz), predict, write a Kaggle submission; returns counts and timings."""
    from .export import load_engine
    start = time.perf_counter()
    runner = load_engine(run, engine, device)
    images, _ = read_images(input_path)
    read_done = time.perf_counter()
    predictions = runner.predict_proba(torch.from_numpy(images).unsqueeze(1)).argmax(1).astype(np.int64)
    predict_done = time.perf_counter()
    write_submission(out_path, predictions)
    end = time.perf_counter()
    return {"images": len(images), "out": str(out_path), "engine": runner.name, "read_s": read_done - start,
            "predict_s": predict_done - read_done, "write_s": end - predict_done, "total_s": end - start}
