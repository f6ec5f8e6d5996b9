"""Scale-out on the real engines, on 2 CPU cores: ensembles and labs as Ray tasks on a local Ray instance (bit for
bit the local result, a killed worker survived), and one model trained by 2 torchrun processes with DDP over gloo."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, run_cli, run_process

from digitlab.checkpoint import read_checkpoint

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

# measured with PyTorch: ONNX export (1.6-6 s a member on a Zen 3 EPYC) is tested with the ensemble tests, not here
MEMBERS = ["--recipe", "fast", "--members", "2", "--train-size", "600", "--val-size", "200", "--epochs", "1",
           "--engine", "torch"]  # fmt: skip


def same_weights(a: Path, b: Path) -> bool:
    ta, tb = read_checkpoint(a / "model.safetensors")[0], read_checkpoint(b / "model.safetensors")[0]
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


@pytest.fixture(scope="module")
def local_members(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("local") / "ensemble"
    r = run_cli("ensemble", *MEMBERS, "--threads", "1", "--out", str(out), "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    return out


def ray_task_pids() -> list[int]:
    """Processes whose title Ray set to the running task's name."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::train_task"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def scratch_folders() -> set[Path]:
    """The Ray tasks' scratch folders in this machine's temporary folder."""
    return set(Path(tempfile.gettempdir()).glob("digitlab-task-*"))


def holds(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open (a task holds its scratch folder's lock file open while it runs)."""
    try:
        return any(os.readlink(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


def test_ensemble_on_local_ray_survives_a_killed_worker_and_equals_the_local_run(local_members, tmp_path, data_dir):
    """`--ray local` with a Ray worker SIGKILLed once its task has written a checkpoint: Ray retries the task on
    this node, the retry resumes from the killed attempt's checkpoint, the command succeeds, both members' weights
    equal the local run's bit for bit, and no scratch folder is left behind."""
    out, before = tmp_path / "ray", scratch_folders()
    args = ["ensemble", *MEMBERS, "--ray", "local", "--out", str(out), "--data-dir", str(data_dir)]
    process = subprocess.Popen([sys.executable, "-m", "digitlab", *args, "--checkpoint-every", "1"], cwd=REPO,
                               text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    killed = []

    def kill_a_task_after_its_first_checkpoint():
        deadline = time.time() + 400  # Ray took over 120 s to start a task on a 2-core VM with other work running
        while time.time() < deadline and not killed and process.poll() is None:
            for folder in scratch_folders() - before:
                if any(folder.glob("member-*/last.safetensors")):
                    for pid in ray_task_pids():
                        if holds(pid, folder / ".lock"):
                            os.kill(pid, signal.SIGKILL)
                            killed.append(pid)
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_task_after_its_first_checkpoint)
    killer.start()
    stdout, stderr = process.communicate(timeout=600)
    killer.join()
    assert killed, "no Ray task was seen with a checkpoint"
    assert process.returncode == 0, stderr
    assert "Ray: 2 tasks of 1 CPU each" in stdout and stdout.count("done on node") == 2
    assert "left on this node by a killed attempt" in stdout, stdout  # resumed, not trained again from the start
    for member in ("member-0", "member-1"):
        assert same_weights(local_members / member, out / member), member
        assert (out / member / "metrics.json").is_file() and (out / member / "last.safetensors").is_file()
    local = json.loads((local_members / "ensemble.json").read_text())["metrics"]
    assert json.loads((out / "ensemble.json").read_text())["metrics"] == local
    assert scratch_folders() - before == set()  # the retry took the killed attempt's folder over, then removed it
    r = run_process(*args)
    assert r.returncode == 0 and r.stdout.count("reusing") == 2 and "Ray:" not in r.stdout  # nothing left to train


def lab_table(folder: Path) -> list[dict]:
    rows = list(csv.DictReader((folder / "table.csv").read_text().splitlines()))
    return [{k: v for k, v in row.items() if not k.startswith("seconds")} for row in rows]


def test_a_lab_on_ray_writes_the_same_table(tmp_path, data_dir):
    args = ["lab", "--strategies", "none,all", "--train-size", "300", "--val-size", "100", "--epochs", "1",
            "--batch-size", "64", "--data-dir", str(data_dir)]  # fmt: skip
    r = run_cli(*args, "--threads", "1", "--out", str(tmp_path / "local"))
    assert r.returncode == 0, r.stderr
    r = run_process(*args, "--ray", "local", "--out", str(tmp_path / "ray"))
    assert r.returncode == 0, r.stderr
    assert lab_table(tmp_path / "local") == lab_table(tmp_path / "ray")
    assert (tmp_path / "ray" / "report.html").is_file()


def test_ray_without_ray_installed_says_how_to_install(tmp_path):
    env = {"PYTHONPATH": str(tmp_path)}
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("raise ImportError('no ray here')")
    r = run_process("ensemble", *MEMBERS, "--ray", "local", "--out", str(tmp_path / "e"), env=env)
    assert r.returncode == 2 and "pip install 'digitlab[cluster]'" in r.stderr and "Traceback" not in r.stderr


def torchrun(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "digitlab"]
    return subprocess.run(command + list(args), cwd=REPO, capture_output=True, text=True, timeout=600)


def test_torchrun_two_processes_train_one_model_within_noise_of_one(tmp_path, data_dir):
    common = ["train", "--recipe", "fast", "--train-size", "3000", "--val-size", "300", "--epochs", "1",
              "--threads", "1", "--data-dir", str(data_dir)]  # fmt: skip
    r = torchrun(*common, "--batch-size", "16", "--out", str(tmp_path / "ddp"))
    assert r.returncode == 0, r.stderr[:2000]  # a rank's own error comes first, torchrun's summary after
    assert "2 processes (torchrun), global batch 32" in r.stdout and r.stdout.count("run saved in") == 1
    r = run_cli(*common, "--batch-size", "32", "--out", str(tmp_path / "one"))
    assert r.returncode == 0, r.stderr
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())["test"]["accuracy"]
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())["test"]["accuracy"]
    assert ddp > 0.85 and abs(ddp - one) < 0.03, (ddp, one)  # same global batch and steps; other random streams
    # resume under torchrun: every rank reads the same last.safetensors and the run finishes as one would
    shutil.copytree(tmp_path / "ddp", tmp_path / "ddp-resumed")
    (tmp_path / "ddp-resumed" / "metrics.json").unlink()
    r = torchrun("train", "--resume", str(tmp_path / "ddp-resumed"), "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr[:2000]  # a rank's own error comes first, torchrun's summary after
    assert json.loads((tmp_path / "ddp-resumed" / "metrics.json").read_text())["test"]["accuracy"] == ddp


def test_a_failing_ray_task_is_named_with_its_node(tmp_path, data_dir):
    """A run that fails inside its Ray task (here: a malformed data file) ends the command with exit 2 and one
    error naming the task, the node it ran on and digitlab's own message (file and row)."""
    bad = tmp_path / "bad.csv"
    bad.write_text("label," + ",".join(f"pixel{i}" for i in range(784)) + "\n" + "3," + ",".join(["0"] * 783) + "\n")
    r = run_process("lab", "--strategies", "none", "--data", str(bad), "--ray", "local", "--out", str(tmp_path / "lab"))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert "[none__n5000__s0] failed on node" in r.stderr and "bad.csv, row 2" in r.stderr, r.stderr[-1500:]
