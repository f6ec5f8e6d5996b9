"""The tools users already know, used end to end: the learning-rate finder (and `train --lr suggested`), rich
progress bars on a terminal (and none off one), experiment tracking read back with TensorBoard's own event reader
and MLflow's own client."""

from __future__ import annotations

import json
import os
import pty
import sys

import pytest
from conftest import REPO, run_cli, run_process

from digitlab.lr_find import valley

SMALL = ["--train-size", "1000", "--val-size", "200", "--data-dir"]


def test_valley_is_two_thirds_down_the_longest_fall():
    losses = [3.0, 2.9, 2.5, 2.0, 1.5, 1.0, 0.8, 0.7, 0.9, 2.0, 5.0]
    # the longest fall runs from index 0 to 7; two thirds of the way: index 5 (rounded)
    assert valley(losses) == 5
    assert valley([1.0, 2.0, 3.0]) == 0  # no fall at all: the first rate


@pytest.mark.slow
def test_lr_find_suggests_a_rate_and_train_reads_it_back(tmp_path, data_dir):
    folder = tmp_path / "lr"
    r = run_cli("lr-find", "--recipe", "fast", *SMALL, str(data_dir), "--steps", "60", "--out", str(folder))
    assert r.returncode == 0, r.stderr
    saved = json.loads((folder / "lr_find.json").read_text())
    assert (folder / "lr_find.png").read_bytes().startswith(b"\x89PNG")
    assert 1e-6 <= saved["suggested_lr"] <= 1 and len(saved["lrs"]) == len(saved["smoothed"]) <= 60
    assert saved["lrs"] == sorted(saved["lrs"])  # the rate only grows
    out = tmp_path / "run"
    r = run_cli("train", "--recipe", "fast", *SMALL, str(data_dir), "--epochs", "1", "--lr", "suggested",
                "--lr-find", str(folder), "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "config.json").read_text())["config"]["train"]["lr"] == saved["suggested_lr"]
    r = run_cli("train", *SMALL, str(data_dir), "--lr", "suggested", "--lr-find", str(folder), "--out", str(out))
    assert r.returncode == 2 and "model.arch = 'compact'" in r.stderr  # found for another model: refused


@pytest.mark.slow
def test_tensorboard_logs_read_back_with_tensorboards_reader(tmp_path, data_dir):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    out = tmp_path / "run"
    r = run_process("train", "--recipe", "fast", *SMALL, str(data_dir), "--epochs", "2", "--log", "tensorboard",
                "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    reader = event_accumulator.EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0})
    reader.Reload()
    tags = reader.Tags()
    assert {"loss/train", "loss/val", "accuracy/val", "lr", "throughput/images_per_s"} <= set(tags["scalars"])
    history = json.loads((out / "history.json").read_text())
    val = [event.value for event in reader.Scalars("accuracy/val")]
    assert val == pytest.approx([h["val_accuracy"] for h in history], abs=1e-6)
    assert {"curves", "confusion_matrix"} <= set(tags["images"])


@pytest.mark.slow
def test_mlflow_runs_read_back_with_mlflows_client_and_members_nest(tmp_path, data_dir):
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # measured with PyTorch: no ONNX export, which costs a fresh process some 6 s for its first member
    ensemble = ["ensemble", "--recipe", "fast", "--members", "2", "--train-size", "500", "--val-size", "200",
                "--epochs", "2", "--engine", "torch", "--out", str(tmp_path / "ens"),
                "--data-dir", str(data_dir)]  # fmt: skip
    r = run_process(*ensemble, "--log", "mlflow", "--log-uri", uri, cwd=tmp_path)  # artifacts: ./mlartifacts there
    assert r.returncode == 0, r.stderr
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("digitlab")
    runs = client.search_runs([experiment.experiment_id])
    parent = [run for run in runs if run.info.run_name == "ens"]
    members = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id]
    assert len(parent) == 1 and sorted(m.info.run_name for m in members) == ["member-0", "member-1"]
    member = members[0]
    assert member.data.params["model.arch"] == "compact" and member.data.params["train.epochs"] == "2"
    history = client.get_metric_history(member.info.run_id, "accuracy_val")
    assert [m.step for m in history] == [1, 2]
    assert "final_test_accuracy" in member.data.metrics
    artifacts = {a.path for a in client.list_artifacts(member.info.run_id)}
    assert {"curves.png", "confusion_matrix.png"} <= artifacts


def test_integrated_gradients_are_complete_on_a_real_model():
    """Captum's attributions, as digitlab calls them, sum to logit(image) - logit(black) (the method's completeness
    axiom), up to the error of 32 integration steps."""
    pytest.importorskip("captum")
    import torch

    from digitlab.config import ModelConfig
    from digitlab.explain import attributions
    from digitlab.models import build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="compact", dropout=0.0)).eval()
    images = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    targets = torch.tensor([0, 3, 7, 9])
    maps = attributions(model, images, targets)
    assert maps.shape == (4, 28, 28)
    with torch.no_grad():
        gap = model(images.float()) - model(torch.zeros(4, 1, 28, 28))
    expected = gap[torch.arange(4), targets].numpy()
    assert abs(maps.sum(axis=(1, 2)) - expected).max() < 0.05 * abs(expected).max() + 1e-3


def run_in_terminal(*args: str, timeout: float = 300) -> str:
    """`python -m digitlab.cli ...` with a pseudo-terminal as its stdout and stderr; everything it wrote."""
    env = {k: v for k, v in os.environ.items() if k != "DIGITLAB_PROGRESS"} | {"COLUMNS": "140", "TERM": "xterm"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the command, its output the terminal
        os.chdir(REPO)
        os.execve(sys.executable, [sys.executable, "-m", "digitlab.cli", *args], env)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, b"".join(chunks).decode(errors="replace")[-2000:]
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_progress_bars_on_a_terminal_and_plain_lines_elsewhere(trained_run, data_dir, tmp_path):
    """On a terminal, training shows its epoch bar (loss, images/s), evaluation its bar over the images and its
    confusion matrix as a rich table; through a pipe the same commands print plain lines and not one escape."""
    shown = run_in_terminal("evaluate", str(trained_run))
    assert "evaluating on mnist" in shown and "/10,000 images" in shown and "accuracy 9" in shown
    assert "│" in shown  # the confusion matrix as a rich table
    shown = run_in_terminal("train", *SMALL, str(data_dir), "--epochs", "1", "--out", str(tmp_path / "run"))
    assert "epoch 1/1" in shown and "loss " in shown and "img/s" in shown
    piped = run_process("evaluate", str(trained_run))
    assert piped.returncode == 0 and "accuracy 9" in piped.stdout
    assert "\x1b[" not in piped.stdout + piped.stderr and "evaluating on" not in piped.stderr
