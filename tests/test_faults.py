"""Interrupted work resumes exactly, and failures to write never destroy what was saved. Real processes, real
signals, real OS write errors."""

from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO

from digitlab.checkpoint import load_checkpoint

CLI = [sys.executable, "-m", "digitlab.cli", "train"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
VOLATILE = ("seconds", "images_per_s", "elapsed_s")  # wall-clock figures differ between any two runs


def train_args(data_dir, out) -> list[str]:
    return [
        "--epochs",
        "4",
        "--train-size",
        "2000",
        "--val-size",
        "300",
        "--batch-size",
        "64",
        "--device",
        "cpu",
        "--checkpoint-every",
        "4",
        "--ema",  # the weight average is part of the state that must resume exactly
        "0.9",
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
    ]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("whole") / "run"
    subprocess.run(CLI + train_args(data_dir, out), check=True, env=ENV, cwd=REPO, capture_output=True)
    return load_checkpoint(out / "last.safetensors")


def assert_same_run(a, b):
    model_a, model_b = a[0].state_dict(), b[0].state_dict()
    for key, value in model_a.items():
        assert torch.equal(value, model_b[key]), key
    averages = [k for k in a[3] if k.startswith("ema.")]
    assert averages and all(torch.equal(a[3][k], b[3][k]) for k in averages)
    strip = [{k: v for k, v in h.items() if k not in VOLATILE} for h in a[2]["history"]]
    assert strip == [{k: v for k, v in h.items() if k not in VOLATILE} for h in b[2]["history"]]


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_is_bit_identical(tmp_path, data_dir, uninterrupted):
    """Kill the training process five times at random moments (each just after a checkpoint landed, plus a random
    delay); every resume continues exactly, and the final weights and history equal an uninterrupted run's."""
    out = tmp_path / "run"
    checkpoint = out / "last.safetensors"
    rng = random.Random(1234)
    resumed_from = []  # (epochs done, steps into the next epoch) of each checkpoint a resume started from
    command = CLI + train_args(data_dir, out)
    for _ in range(5):
        seen = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
        process = subprocess.Popen(command, env=ENV, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while process.poll() is None and time.time() < deadline:
            if checkpoint.exists() and checkpoint.stat().st_mtime_ns != seen:
                break  # training has made progress since the last kill
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.8))
        assert process.poll() is None, "the run finished before it could be killed; make it longer"
        process.send_signal(signal.SIGKILL)
        process.wait()
        info = load_checkpoint(checkpoint)[2]
        resumed_from.append((info["epoch"], info.get("in_epoch", {}).get("step", 0)))
        command = CLI + ["--resume", str(out)]
    subprocess.run(command, check=True, env=ENV, cwd=REPO, capture_output=True)
    assert len(set(resumed_from)) >= 3, f"kills did not land at different points: {resumed_from}"
    assert any(step > 0 for _, step in resumed_from), f"no resume started mid-epoch: {resumed_from}"
    print(f"resumed from (epoch, step): {resumed_from}")
    assert (out / "metrics.json").is_file()
    assert_same_run(uninterrupted, load_checkpoint(checkpoint))


def ctrl_c_during_training(data_dir, out) -> tuple[int, str]:
    """Start a training process, press Ctrl-C (SIGINT) a second into training; (exit code, stderr)."""
    process = subprocess.Popen(
        CLI + train_args(data_dir, out), env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for line in process.stdout:
        if line.startswith("run folder:"):
            break
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, data_dir) -> tuple[int, str, Path]:
    """One training process stopped by Ctrl-C a second into training: (exit code, stderr, run folder). Tests copy
    the folder before resuming it."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    return (*ctrl_c_during_training(data_dir, out), out)


@pytest.mark.slow
def test_ctrl_c_saves_prints_resume_command_and_exits_130(tmp_path, interrupted, uninterrupted):
    returncode, stderr, stopped = interrupted
    assert returncode == 130, stderr
    assert f"digitlab train --resume {stopped}" in stderr and "Traceback" not in stderr
    out = shutil.copytree(stopped, tmp_path / "run")
    info = load_checkpoint(out / "last.safetensors")[2]
    assert "in_epoch" in info or info["epoch"] >= 1
    r = subprocess.run(CLI + ["--resume", str(out)], env=ENV, cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert_same_run(uninterrupted, load_checkpoint(out / "last.safetensors"))


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))


@pytest.mark.slow
def test_failed_checkpoint_write_is_a_clear_error_and_keeps_the_previous_one(tmp_path, interrupted):
    """The OS refuses the write (a file-size limit, as a full disk would); the last good checkpoint survives."""
    assert interrupted[0] == 130
    out = shutil.copytree(interrupted[2], tmp_path / "run")
    before = (out / "last.safetensors").read_bytes()
    r = subprocess.run(
        CLI + ["--resume", str(out)], env=ENV, cwd=REPO, capture_output=True, text=True, preexec_fn=_limit_file_size
    )
    assert r.returncode == 2, r.stderr
    assert "cannot write" in r.stderr and "File too large" in r.stderr and "Traceback" not in r.stderr
    assert (out / "last.safetensors").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--epochs", "1", "--out", "/proc/digitlab-run"],
        ["data", "kaggle-csv", "--out", "/proc/digitlab-kaggle"],
    ],
)
def test_unwritable_output_folder_is_a_clear_error(argv, data_dir):
    r = subprocess.run(
        [sys.executable, "-m", "digitlab.cli", *argv, "--data-dir", str(data_dir)],
        env=ENV,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "cannot" in r.stderr and "/proc/digitlab" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "run").mkdir()
    r = subprocess.run(CLI + ["--resume", str(tmp_path / "run")], env=ENV, cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "last.safetensors" in r.stderr and "checkpoint not found" in r.stderr


@pytest.mark.slow
def test_auto_engine_falls_back_to_torch_when_onnx_cannot_be_written(tmp_path, data_dir):
    """`evaluate` on a run folder it may not write into (here: a file-size limit) still answers, with PyTorch."""
    from digitlab.checkpoint import save_checkpoint
    from digitlab.config import RunConfig
    from digitlab.models import build_model

    save_checkpoint(tmp_path / "model.safetensors", build_model(RunConfig().model), RunConfig())
    r = subprocess.run(
        [sys.executable, "-m", "digitlab.cli", "evaluate", str(tmp_path), "--data-dir", str(data_dir)],
        env=ENV,
        cwd=REPO,
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size,
    )
    assert r.returncode == 0, r.stderr
    assert "(torch): accuracy" in r.stdout and not (tmp_path / "model.onnx").exists()
