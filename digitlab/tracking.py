"""Experiment tracking in the tools users already open: TensorBoard and MLflow (optional extra `track`).

`--log tensorboard` writes TensorBoard event files into the run folder (`RUN/tensorboard/`; point `tensorboard
--logdir` at a run, a lab or an ensemble folder to see them all, grouped by folder). `--log mlflow` records an
MLflow run in the tracking store given by `--log-uri`, else $MLFLOW_TRACKING_URI, else a local SQLite store
`./mlflow.db` in the working folder (MLflow's own recommendation since its file store went into maintenance;
artifacts go to `./mlartifacts`; `mlflow ui --backend-store-uri sqlite:///mlflow.db` shows them). Either way:
- per epoch: training and validation loss and accuracy, the learning rate and the throughput;
- the resolved config as hyperparameters (flattened: `train.lr`, `model.arch`, ...), with the final metrics;
- at the end, the learning curves and the confusion matrix (on the test set of the chosen model) as images.
Lab cells and ensemble members are grouped under one parent: an MLflow parent run (the folder's name) with nested
runs, or the folder tree for TensorBoard.

A tracker is an ordinary object the training loop calls (`log_epoch`, `finish`); `NullTracker` when off.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path

from .errors import DigitlabError

EPOCH_SCALARS = {  # history key -> tracked name
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "train_accuracy": "accuracy/train",
    "val_accuracy": "accuracy/val",
    "lr": "lr",
    "images_per_s": "throughput/images_per_s",
}


def flatten(config: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = "none" if value is None else value
    return out


class NullTracker:
    takes_images = False  # finish() ignores images: train.finish skips drawing them

    def log_epoch(self, record: dict) -> None:
        pass

    def finish(self, metrics: dict, images: dict[str, bytes]) -> None:
        pass


class TensorBoardTracker:
    takes_images = True

    def __init__(self, run_dir: Path, config: dict):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise DigitlabError("--log tensorboard needs TensorBoard: pip install 'digitlab[track]'") from None
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.config = flatten(config)

    def log_epoch(self, record: dict) -> None:
        for key, name in EPOCH_SCALARS.items():
            if key in record:
                self.writer.add_scalar(name, record[key], record["epoch"])
        self.writer.flush()

    def finish(self, metrics: dict, images: dict[str, bytes]) -> None:
        import numpy as np
        from PIL import Image

        final = {"final/val_accuracy": metrics["val_accuracy"]}
        if metrics.get("test"):
            final["final/test_accuracy"] = metrics["test"]["accuracy"]
        self.writer.add_hparams({k: v for k, v in self.config.items() if isinstance(v, (int, float, str, bool))},
                                final, run_name=".")  # fmt: skip
        for name, png in images.items():
            with Image.open(io.BytesIO(png)) as image:
                self.writer.add_image(name, np.asarray(image.convert("RGB")), dataformats="HWC")
        self.writer.close()


class MLflowTracker:
    takes_images = True

    def __init__(self, run_dir: Path, config: dict, uri: str | None, parent: str | None):
        try:
            import mlflow
        except ImportError:
            raise DigitlabError("--log mlflow needs MLflow: pip install 'digitlab[track]'") from None
        self.mlflow = mlflow
        mlflow.set_tracking_uri(tracking_uri(uri))
        tags = {"mlflow.parentRunId": parent} if parent else {}
        self.client = mlflow.MlflowClient()
        experiment = mlflow.set_experiment("digitlab")
        self.run = self.client.create_run(experiment.experiment_id, run_name=run_dir.name, tags=tags)
        params = flatten(config)
        self.client.log_batch(self.run.info.run_id, params=[mlflow.entities.Param(k, str(v)[:500])
                                                            for k, v in params.items()])  # fmt: skip

    def log_epoch(self, record: dict) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(name.replace("/", "_"), float(record[key]), stamp, record["epoch"])
                   for key, name in EPOCH_SCALARS.items() if key in record]  # fmt: skip
        self.client.log_batch(self.run.info.run_id, metrics=metrics)

    def finish(self, metrics: dict, images: dict[str, bytes]) -> None:
        run_id = self.run.info.run_id
        self.client.log_metric(run_id, "final_val_accuracy", metrics["val_accuracy"])
        if metrics.get("test"):
            self.client.log_metric(run_id, "final_test_accuracy", metrics["test"]["accuracy"])
        with tempfile.TemporaryDirectory() as folder:
            for name, png in images.items():
                (Path(folder) / f"{name}.png").write_bytes(png)
                self.client.log_artifact(run_id, str(Path(folder) / f"{name}.png"))
        self.client.set_terminated(run_id)


def tracking_uri(uri: str | None) -> str:
    """--log-uri, else $MLFLOW_TRACKING_URI, else a SQLite store ./mlflow.db in the working folder."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def open_tracker(kind: str, run_dir: Path, config: dict, uri: str | None = None, parent: str | None = None):
    if kind == "tensorboard":
        return TensorBoardTracker(run_dir, config)
    if kind == "mlflow":
        return MLflowTracker(run_dir, config, uri, parent)
    return NullTracker()


def open_parent(kind: str, folder: Path, config: dict, uri: str | None = None) -> str | None:
    """An MLflow parent run for a lab or an ensemble (its id, for the members' `parent`); None otherwise."""
    if kind != "mlflow":
        return None
    tracker = MLflowTracker(folder, config, uri, None)
    return tracker.run.info.run_id


def close_parent(kind: str, run_id: str | None, uri: str | None = None) -> None:
    if kind == "mlflow" and run_id:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri(uri))
        mlflow.MlflowClient().set_terminated(run_id)
