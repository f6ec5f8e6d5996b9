"""Knowledge distillation: train a small student on a teacher's probabilities as well as the labels.

`digitlab distill TEACHER` trains an ordinary run (the `student` recipe, the compact CNN with a strided stem for 96
epochs, unless flags say otherwise) whose training target for image i is

    target_i = (1 - weight) * one_hot(label_i) + weight * p_teacher(image_i)

with the cross-entropy against that distribution as the loss (label smoothing, when set, applies on top). This is
Hinton et al.'s distillation loss at temperature 1, the temperature Beyer et al. ("Knowledge distillation: a good
teacher is patient and consistent", 2022) found best for matching a teacher's function. The teacher is any run or
ensemble folder, read through the Engine interface (an ensemble's members averaged, with its TTA switch). Its
probabilities are computed once, on the student's un-augmented training images, and kept in the run folder
(`teacher.safetensors`, written and read by state.py), so resuming needs neither the teacher nor its time again.

`--consistent` instead has the teacher label every augmented batch exactly as the student sees it (Beyer et al.'s
"consistent teaching": the student then matches the teacher's function on the augmented images, not a target of
the clean image that a rotated or shifted copy may no longer deserve). Each step runs the teacher's forward pass
too (state.BatchTeacher), and resuming needs the teacher folder where it was.

Honesty: the student takes the teacher's data settings (source, validation size, sub-sample and split seed), so its
validation images are images the teacher never trained on, and the teacher never sees the test set. `--val-size 0`
(no validation: the last epoch is kept) trains a final student on all the images, the teacher's validation
images included, with a schedule chosen on the split before.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from . import console
from .config import RunConfig, from_dict
from .data import load_train_val
from .engines import load_engine
from .errors import DataError, DigitlabError
from .runs import CONFIG, has_member_splits, is_ensemble, is_run, read_json, recorded_run
from .train import train

CHUNK = 2048  # images per teacher call: the progress bar moves, memory stays small


def teacher_config(teacher: str | Path) -> RunConfig:
    """The config the teacher (a run, or an ensemble's first member) was trained with."""
    teacher = Path(teacher)
    if not (is_ensemble(teacher) or (teacher.is_dir() and is_run(teacher))):
        raise DigitlabError(f"teacher {teacher}: not a run folder or an ensemble folder")
    run = recorded_run(teacher)
    recorded = read_json(run / CONFIG, "run config")
    if not isinstance(recorded, dict) or "config" not in recorded:
        raise DataError(run / CONFIG, None, "no 'config' object: not a digitlab run folder")
    return from_dict(RunConfig, recorded["config"], where=f"{run / CONFIG}: config")


def student_config(config: RunConfig, teacher: str | Path) -> RunConfig:
    """`config` taught by `teacher`, on the teacher's split: its data source, validation size, sub-sample and split
    seed (its training seed when it recorded none); the data cache folder stays the student's. A student asking for
    no validation (val_size 0: the final model of a schedule chosen before) trains on all the teacher's images."""
    taught = teacher_config(teacher)
    if has_member_splits(teacher) and config.data.val_size != 0:
        raise DigitlabError(f"teacher {teacher}: its members held out different validation splits (--member-splits), "
                            "so a student's validation images would be images some member trained on; train "
                            "a final student of it (--val-size 0)")  # fmt: skip
    split_seed = taught.train.seed if taught.data.split_seed is None else taught.data.split_seed
    val_size = 0 if config.data.val_size == 0 else taught.data.val_size
    data = dataclasses.replace(taught.data, data_dir=config.data.data_dir, split_seed=split_seed, val_size=val_size)
    distill = dataclasses.replace(config.distill, teacher=str(Path(teacher).resolve()))
    return dataclasses.replace(config, data=data, distill=distill)


def teacher_probabilities(teacher: str | Path, images: torch.Tensor, device: str = "cpu") -> torch.Tensor:
    """(N, 10) float32 probabilities of the teacher (its PyTorch weights in fp32, on `device`, the student's: a GPU
    student's teacher runs on the GPU; nothing is exported into the teacher's folder)."""
    engine = load_engine(teacher, engine="torch", device=device)
    parts = []
    with console.bar(f"teacher {Path(teacher).name}", len(images), "images") as progress:
        for chunk in images.split(CHUNK):
            parts.append(torch.as_tensor(engine.predict_proba(chunk), dtype=torch.float32))
            progress.update(advance=len(chunk))
    return torch.cat(parts)


def distill(config: RunConfig, teacher: str | Path, out: str | Path | None = None, log=print) -> dict:
    """Train `config`'s model as a student of `teacher` into a new run folder; returns its metrics."""
    config = student_config(config, teacher)
    if config.distill.consistent:  # the teacher runs inside the loop, on each augmented batch (state.BatchTeacher)
        log(f"teacher {teacher}: labels each augmented batch (consistent teaching), weight {config.distill.weight:g}")
        return train(config, out=out, log=log)
    train_set, _ = load_train_val(config.data, config.train.seed)
    log(f"teacher {teacher}: probabilities for {len(train_set):,} training images, weight {config.distill.weight:g}")
    probabilities = teacher_probabilities(teacher, train_set.images, config.train.device)
    return train(config, out=out, log=log, teacher=probabilities)
