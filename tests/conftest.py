"""Shared fixtures: real MNIST from the digitlab cache (fetched once if missing) and tiny hand-made files."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from digitlab.datasets import data_root, fetch
from digitlab.fonts import TYPED, system_fonts

REPO = Path(__file__).resolve().parent.parent
TYPED_INSTALLED = set(TYPED) <= {p.name for p in system_fonts()}  # --typed-digits' fonts (.ci/run installs them)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The verified MNIST cache folder (the test run fetches it through digitlab when absent)."""
    return fetch("mnist", verbose=False)


@pytest.fixture(scope="session")
def data_dir(mnist_dir) -> Path:
    return data_root()


@pytest.fixture(scope="session")
def mnist_test(mnist_dir) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's 10,000 test images (uint8, N x 28 x 28) and labels."""
    from digitlab.formats import read_idx_pair

    return read_idx_pair(mnist_dir / "t10k-images-idx3-ubyte", mnist_dir / "t10k-labels-idx1-ubyte")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, data_dir) -> Path:
    """The one small trained run every test that needs a model shares: `digitlab train` as a user runs it, the
    reference CNN for 3 epochs on 5,000 MNIST images (about 98 % test accuracy, some 20 s on 2 cores). Tests read it
    and must not change it; a test that breaks a run folder copies it first (`copy_run`)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    r = run_process("train", "--epochs", "3", "--train-size", "5000", "--val-size", "500", "--out", str(out),
                    "--data-dir", str(data_dir))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "test accuracy" in r.stdout and f"run saved in {out}" in r.stdout
    assert "Total params: 601,578" in r.stdout
    # then evaluated as a user would, which exports model.onnx for the auto engine once: every copy carries it
    r = run_process("evaluate", str(out), "--json", "--data-dir", str(data_dir))
    assert r.returncode == 0 and json.loads(r.stdout)["engine"].startswith("onnx"), r.stderr
    assert (out / "model.onnx").is_file()
    return out


def copy_run(run: Path, to: Path) -> Path:
    """A private copy of a run folder, for tests that change or break it."""
    shutil.copytree(run, to)
    return to


def replace_model(run: Path) -> None:
    """Put another model in the run folder, as `cp -p` of an older run's model.safetensors (or a backup restored)
    leaves it: the last layer's rows for digits 0 and 1 swapped, so its predictions differ, and a modification time
    an hour before every other file in the folder, so that no file derived from the old model looks out of date."""
    from safetensors.torch import save

    from digitlab.checkpoint import read_checkpoint
    from digitlab.runs import json_text

    path = run / "model.safetensors"
    tensors, info = read_checkpoint(path)
    last = [k for k, v in tensors.items() if k.startswith("model.") and v.shape[:1] == (10,)][-2:]  # weight, bias
    for key in last:
        tensors[key] = tensors[key][[1, 0, *range(2, 10)]].contiguous()
    path.write_bytes(save(tensors, metadata={"digitlab": json_text(info, indent=None)}))
    oldest = min(p.stat().st_mtime for p in run.iterdir())
    os.utime(path, (oldest - 3600, oldest - 3600))


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def tiny_images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.array([3, 1, 4, 1, 5])


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`digitlab ARGS` in this process (`cli.main`), its stdout, stderr and exit code captured as a subprocess's
    would be: the same parsing, commands and error handling without the 2-4 s a fresh interpreter spends importing
    torch (and torch._dynamo, which the first optimizer imports). An error that is not digitlab's own propagates
    and fails the test, as its traceback would in a real process. Tests of what only a real process shows
    (signals, --debug's traceback, environment, working folder) use `run_process`."""
    import torch

    from digitlab import cli

    stdout, stderr, threads = io.StringIO(), io.StringIO(), torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = cli.main(list(args))
    except SystemExit as e:  # argparse: --help (0), or a flag it refuses (2); as Python exits for other codes
        code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
    finally:
        torch.set_num_threads(threads)  # --threads N must not slow the tests after it
    return subprocess.CompletedProcess(["digitlab", *args], code, stdout.getvalue(), stderr.getvalue())


def run_process(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    """Run `python -m digitlab.cli ...` as a real subprocess; returns CompletedProcess with text output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "digitlab.cli", *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run_dir: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    """`digitlab serve RUN [flags]` as a real process on a free port; returns it once /health answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "digitlab.cli", "serve", str(run_dir), "--port", str(port), *flags],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1)
            return process, url
        except (urllib.error.URLError, ConnectionError):
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.2)
    raise AssertionError("server did not start")


@pytest.fixture(scope="session")
def served_run(trained_run, tmp_path_factory) -> Path:
    """A copy of the trained run for the server tests: the auto engine writes model.onnx into the folder it serves."""
    return copy_run(trained_run, tmp_path_factory.mktemp("serve") / "run")


@pytest.fixture(scope="session")
def server(served_run):
    """One `digitlab serve` process shared by the HTTP tests; its URL."""
    process, url = start_server(served_run)
    yield url
    process.terminate()
    process.wait(timeout=10)
