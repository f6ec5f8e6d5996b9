"""Datasets in memory: load a named dataset or a file, split off a stratified validation set, sub-sample.

A `Digits` holds images as one uint8 tensor (N, 1, 28, 28) and labels as one int64 tensor (N,); training batches are
slices of a permutation of it. The validation set is a seeded, stratified split of the *training* data; the test set
is the dataset's official test split and is only ever evaluated, never used to choose anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import DataConfig
from .datasets import DATASETS, SPLIT_FILES, load_split
from .errors import DataError, DigitlabError
from .formats import read_idx_pair, read_images


@dataclass
class Digits:
    images: torch.Tensor  # (N, 1, 28, 28) uint8, raw pixels 0..255
    labels: torch.Tensor | None  # (N,) int64, or None for an unlabelled set
    name: str = ""

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray | torch.Tensor, name: str | None = None) -> Digits:
        index = torch.as_tensor(index, dtype=torch.long)
        labels = None if self.labels is None else self.labels[index]
        return Digits(self.images[index], labels, name or self.name)


def from_arrays(images: np.ndarray, labels: np.ndarray | None, name: str) -> Digits:
    tensor_labels = None if labels is None else torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
    return Digits(torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1), tensor_labels, name)


def load_source(source: str, split: str = "train", data_dir: str | None = None, labelled: bool = True) -> Digits:
    """A named dataset's split, or a file: Kaggle CSV, .npz, an IDX image file, or a folder of the four IDX files."""
    if source in DATASETS:
        images, labels = load_split(source, split, data_dir)
        return from_arrays(images, labels, f"{source}/{split}")
    path = Path(source)
    if path.is_dir():
        names = SPLIT_FILES[split]
        files = [next((p for p in (path / n, path / f"{n}.gz") if p.is_file()), None) for n in names]
        if None in files:
            raise DataError(path, None, f"folder lacks {names[0]}[.gz] or {names[1]}[.gz] (the {split} split)")
        images, labels = read_idx_pair(files[0], files[1])
    elif path.exists():
        images, labels = read_images(path)
    else:
        raise DigitlabError(f"'{source}' is neither a dataset name ({', '.join(DATASETS)}) nor an existing file")
    if labelled and labels is None:
        raise DataError(
            path,
            None,
            "has no labels; expected a labelled set (a CSV with a 'label' column, an .npz "
            "with labels, or an IDX folder)",
        )
    return from_arrays(images, labels, str(path))


def stratified_split(labels: torch.Tensor, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, chosen) where `chosen` has `size` items with class shares as in `labels`; seeded."""
    labels_np = labels.numpy()
    if size <= 0:
        return np.arange(len(labels_np)), np.array([], dtype=np.int64)
    if size >= len(labels_np):
        raise DigitlabError(f"cannot hold out {size:,} images from a set of {len(labels_np):,}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels_np, return_counts=True)
    # Largest-remainder apportionment: each class gets its share of `size`, rounded so the total is exact.
    exact = counts * size / len(labels_np)
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: size - take.sum()]:
        take[i] += 1
    chosen = [rng.permutation(np.flatnonzero(labels_np == c))[:k] for c, k in zip(classes, take)]
    chosen = np.sort(np.concatenate(chosen))
    rest = np.setdiff1d(np.arange(len(labels_np)), chosen)
    return rest, chosen


def auto_val_size(labels: torch.Tensor) -> int:
    """5,000 images or 10 % of the set, whichever is smaller (MNIST: 5,000 of 60,000, as the reference used), but at
    least 2 per class where the set has them, so every class is validated on."""
    classes = len(torch.unique(labels))
    return min(len(labels) - classes, max(min(5000, round(0.1 * len(labels))), 2 * classes))


def check_recorded_source(data: DataConfig, source: str | None, run: str | Path, purpose: str) -> None:
    """A run trained on a file is opened again only when the user names that file (`source`): paths recorded in a
    run folder or checkpoint are not opened by themselves. Named datasets need nothing."""
    if data.source not in DATASETS and source != data.source:
        raise DigitlabError(f"{run} was trained on the file {data.source!r}: pass --data with that path {purpose} "
                            "(paths stored in a checkpoint are not opened by themselves)")  # fmt: skip


def split_indices(config: DataConfig, labels: torch.Tensor, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, validation) into the training source whose labels are `labels`: the split a run of `config`
    and training seed `seed` draws (its split seed when it has one)."""
    seed = seed if config.split_seed is None else config.split_seed
    val_size = auto_val_size(labels) if config.val_size is None else config.val_size
    return stratified_split(labels, val_size, seed)


def load_train_val(config: DataConfig, seed: int) -> tuple[Digits, Digits]:
    """The training data split into (train, validation), then train optionally sub-sampled; both stratified."""
    seed = seed if config.split_seed is None else config.split_seed
    full = load_source(config.source, "train", config.data_dir)
    rest, val_index = split_indices(config, full.labels, seed)
    train = full.subset(rest, f"{full.name} (train)")
    if config.train_size is not None and config.train_size < len(train):
        _, keep = stratified_split(train.labels, config.train_size, seed + 1)
        train = train.subset(keep)
    if config.typed_digits or config.handwriting_fonts:
        from .fonts import handwritten_digits, typed_digits

        if config.typed_digits:
            train = with_font_digits(train, *typed_digits(config.data_dir), "typed")
        if config.handwriting_fonts:
            train = with_font_digits(train, *handwritten_digits(config.data_dir), "handwriting-font")
    return train, full.subset(val_index, f"{full.name} (validation)")


def with_font_digits(train: Digits, images, labels, kind: str) -> Digits:
    """The training images followed by digits drawn in fonts (fonts.py); the validation split never holds any."""
    drawn = from_arrays(images, labels, kind)
    return Digits(
        torch.cat([train.images, drawn.images]),
        torch.cat([train.labels, drawn.labels]),
        f"{train.name} + {len(drawn):,} {kind} digits",
    )


def load_test(config: DataConfig) -> Digits | None:
    """The official test split of a named dataset; None for a file source (e.g. Kaggle's train.csv has none)."""
    if config.source in DATASETS:
        return load_source(config.source, "test", config.data_dir)
    path = Path(config.source)
    if path.is_dir() and all((path / n).is_file() or (path / f"{n}.gz").is_file() for n in SPLIT_FILES["test"]):
        return load_source(config.source, "test")
    return None
