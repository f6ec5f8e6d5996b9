"""Helpers every benchmark shares: the machine's description, running the digitlab CLI, mean and standard
deviation, and writing a result as JSON under benchmarks/out/ (besides the table each script prints)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent / "out"


def machine() -> dict:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


def digitlab(*args: str) -> tuple[float, str]:
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "digitlab.cli", *args], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"digitlab {' '.join(args)} failed:\n{r.stderr}")
    return time.perf_counter() - start, r.stdout


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (nan for a single value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else float("nan")


def write_result(name: str, result: dict) -> Path:
    """benchmarks/out/NAME.json, the raw figures behind a printed table."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    return path
