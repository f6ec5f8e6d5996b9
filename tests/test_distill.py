"""`digitlab distill`: a student learns from a teacher's probabilities on the teacher's split, keeps them in its run
folder, and is an ordinary run (evaluate works on it); bad teachers and flags get one clear error."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import run_cli

from digitlab.checkpoint import load_checkpoint
from digitlab.config import DataConfig, RunConfig
from digitlab.data import load_train_val
from digitlab.distill import student_config, teacher_probabilities
from digitlab.engines import TorchEngine
from digitlab.errors import DataError, DigitlabError
from digitlab.runs import TEACHER
from digitlab.state import BatchTeacher, training_targets


@pytest.mark.slow
def test_student_learns_from_the_teacher_on_its_split_and_keeps_its_probabilities(trained_run, tmp_path, data_dir):
    teacher = shutil.copytree(trained_run, tmp_path / "teacher")
    student = tmp_path / "student"
    r = run_cli("distill", str(teacher), "--epochs", "2", "--weight", "0.8", "--out", str(student),
                "--data-dir", str(data_dir))  # fmt: skip
    assert r.returncode == 0, r.stderr
    recorded = json.loads((student / "config.json").read_text())["config"]
    taught = json.loads((teacher / "config.json").read_text())["config"]
    assert recorded["recipe"] == "student" and recorded["model"]["arch"] == "compact"
    assert recorded["model"]["stem"] == "stride" and recorded["train"]["epochs"] == 2  # the flag changed a field
    assert recorded["distill"] == {"teacher": str(teacher.resolve()), "weight": 0.8, "consistent": False}
    assert {k: recorded["data"][k] for k in ("source", "val_size", "train_size")} == {
        k: taught["data"][k] for k in ("source", "val_size", "train_size")
    }
    assert recorded["data"]["split_seed"] == taught["train"]["seed"]  # the teacher's split, stated explicitly
    metrics = json.loads((student / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.85, metrics["test"]["accuracy"]

    _, config, _, _ = load_checkpoint(student / "model.safetensors")
    train_set, val_set = load_train_val(config.data, config.train.seed)
    teacher_train, teacher_val = load_train_val(load_checkpoint(teacher / "model.safetensors")[1].data, 0)
    assert torch.equal(val_set.images, teacher_val.images) and torch.equal(train_set.labels, teacher_train.labels)
    expected = TorchEngine(teacher / "model.safetensors").predict_proba(train_set.images)
    shutil.rmtree(teacher)  # the kept probabilities serve from now on: resuming needs no teacher
    targets = training_targets(config, train_set, student)
    one_hot = torch.nn.functional.one_hot(train_set.labels, 10).float()
    np.testing.assert_allclose(targets.numpy(), (0.2 * one_hot + 0.8 * torch.as_tensor(expected)).numpy(), atol=1e-5)
    torch.testing.assert_close(targets.sum(1), torch.ones(len(train_set)))

    with pytest.raises(DataError, match="not for this run"):
        training_targets(config, train_set.subset(np.arange(100)), student)
    other = dataclasses.replace(config, distill=dataclasses.replace(config.distill, teacher="/elsewhere"))
    with pytest.raises(DataError, match="not for this run"):
        training_targets(other, train_set, student)

    r = run_cli("evaluate", str(student), "--data-dir", str(data_dir))
    assert r.returncode == 0 and "accuracy" in r.stdout, r.stderr
    (student / "metrics.json").unlink()  # as if stopped before the end: resume finishes it, teacher long gone
    r = run_cli("train", "--resume", str(student), "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    assert json.loads((student / "metrics.json").read_text())["test"] == metrics["test"]


def test_a_consistent_teacher_labels_the_augmented_batch(trained_run, mnist_test):
    taught = RunConfig(distill=dataclasses.replace(RunConfig().distill, teacher=str(trained_run), consistent=True))
    x = torch.from_numpy(mnist_test[0][:16]).unsqueeze(1).float().rot90(1, (2, 3))  # any augmented view
    labels = torch.from_numpy(mnist_test[1][:16]).long()
    targets = BatchTeacher(taught, torch.device("cpu"))(x, labels, None)
    expected = TorchEngine(trained_run / "model.safetensors").predict_proba(x)
    one_hot = torch.nn.functional.one_hot(labels, 10).float()
    np.testing.assert_allclose(targets.numpy(), (0.3 * one_hot + 0.7 * torch.as_tensor(expected)).numpy(), atol=1e-5)


@pytest.mark.slow
def test_consistent_distillation_end_to_end_keeps_no_probabilities(trained_run, tmp_path, data_dir):
    student = tmp_path / "student"
    r = run_cli("distill", str(trained_run), "--consistent", "--epochs", "2", "--out", str(student),
                "--data-dir", str(data_dir))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "labels each augmented batch" in r.stdout and not (student / TEACHER).exists()
    assert json.loads((student / "config.json").read_text())["config"]["distill"]["consistent"] is True
    metrics = json.loads((student / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.85, metrics["test"]["accuracy"]
    (student / "metrics.json").unlink()  # as if stopped before the end: resume finishes it from the teacher folder
    r = run_cli("train", "--resume", str(student), "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    assert json.loads((student / "metrics.json").read_text())["test"] == metrics["test"]


def test_without_a_teacher_the_targets_are_the_labels(tmp_path, data_dir):
    plain = RunConfig(data=DataConfig(val_size=100, train_size=200, data_dir=str(data_dir)))
    train_set, _ = load_train_val(plain.data, 0)
    assert training_targets(plain, train_set, tmp_path) is train_set.labels
    assert not list(tmp_path.iterdir())


def test_a_final_student_without_validation_trains_on_all_the_teachers_images(trained_run):
    split = student_config(RunConfig(), trained_run).data
    final = student_config(RunConfig(data=DataConfig(val_size=0)), trained_run).data
    assert split.val_size == 500 and final.val_size == 0
    assert dataclasses.replace(final, val_size=500) == split  # nothing else of the teacher's split changes


def test_bad_teachers_and_split_flags_are_one_clear_error(tmp_path):
    r = run_cli("distill", str(tmp_path / "nothing"), "--epochs", "1")
    assert r.returncode == 2 and "not a run folder or an ensemble folder" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("distill", str(tmp_path), "--val-size", "100")
    assert r.returncode == 2 and "teacher's data and split" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{not json")
    (tmp_path / "run" / "model.safetensors").write_bytes(b"")
    r = run_cli("distill", str(tmp_path / "run"), "--epochs", "1")
    assert r.returncode == 2 and "config.json" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_the_teacher_runs_on_the_students_device(trained_run, tmp_path, data_dir):
    """A GPU student's teacher labels its images on the GPU (not minutes on the CPU first): asked for a device that
    is not there, the teacher's own loading refuses at once, before any folder is made."""
    out = tmp_path / "student"
    r = run_cli("distill", str(trained_run), "--device", "cuda", "--epochs", "1", "--out", str(out),
                "--data-dir", str(data_dir))  # fmt: skip
    assert r.returncode == 2 and "--device cuda: no CUDA device" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "probabilities for" in r.stdout and not out.exists()
    images = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    assert teacher_probabilities(trained_run, images, "cpu").shape == (4, 10)
    with pytest.raises(DigitlabError, match="no CUDA device"):
        teacher_probabilities(trained_run, images, "cuda")
