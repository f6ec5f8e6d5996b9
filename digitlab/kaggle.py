"""Kaggle "Digit Recognizer" offline: make its CSV files from MNIST, and score a submission against answers.

Kaggle's competition data is MNIST's 70,000 images re-split into 42,000 labelled training rows and 28,000 test rows.
`make_kaggle_csv` does the same with a seeded shuffle of all 70,000, and writes the test answers beside them, so the
whole flow (train on train.csv, predict test.csv, score) runs and is scored without the Kaggle site. Because the
shuffle mixes MNIST's official test images into train.csv, a model trained on it must be scored on answers.csv, not
on the MNIST test set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .datasets import load_split
from .errors import DataError
from .formats import write_kaggle_csv, write_submission
from .runs import check_output

KAGGLE_TRAIN_ROWS = 42_000


def make_kaggle_csv(
    out_dir: str | Path, dataset: str = "mnist", data_dir: str | None = None, seed: int = 0, force: bool = False
) -> dict:
    """Write train.csv (label + pixels), test.csv (pixels) and answers.csv (ImageId,Label) into `out_dir`; existing
    files there are replaced only with `force`, and nothing is written unless all three may be."""
    out_dir = Path(out_dir)
    for name in ("train.csv", "test.csv", "answers.csv"):
        check_output(out_dir / name, force=force)
    train_x, train_y = load_split(dataset, "train", data_dir)
    test_x, test_y = load_split(dataset, "test", data_dir)
    images, labels = np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])
    order = np.random.default_rng(seed).permutation(len(images))
    train_idx, test_idx = order[:KAGGLE_TRAIN_ROWS], order[KAGGLE_TRAIN_ROWS:]
    write_kaggle_csv(out_dir / "train.csv", images[train_idx], labels[train_idx])
    write_kaggle_csv(out_dir / "test.csv", images[test_idx])
    write_submission(out_dir / "answers.csv", labels[test_idx])
    return {"train_rows": len(train_idx), "test_rows": len(test_idx), "out": str(out_dir)}


def read_submission(path: str | Path) -> np.ndarray:
    """Labels of an `ImageId,Label` file, checked: header, ids 1..N in order, labels 0..9."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").replace("\r\n", "\n").strip("\n").split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(path, None, f"cannot read submission ({e})") from None
    if [c.strip().strip('"') for c in lines[0].split(",")] != ["ImageId", "Label"]:
        raise DataError(path, "row 1", "header must be 'ImageId,Label'")
    labels = np.empty(len(lines) - 1, dtype=np.int64)
    for row, line in enumerate(lines[1:], start=2):
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != 2 or cells[0] != str(row - 1) or cells[1] not in tuple("0123456789"):
            raise DataError(path, f"row {row}", f"'{line[:30]}', expected '{row - 1},<digit 0..9>'")
        labels[row - 2] = int(cells[1])
    return labels


def score(submission: str | Path, answers: str | Path) -> dict:
    """Kaggle's metric for this competition: categorization accuracy."""
    predicted, truth = read_submission(submission), read_submission(answers)
    if len(predicted) != len(truth):
        raise DataError(submission, None, f"{len(predicted):,} rows, but {answers} has {len(truth):,}")
    return {
        "rows": len(truth),
        "accuracy": float((predicted == truth).mean()),
        "errors": int((predicted != truth).sum()),
    }
