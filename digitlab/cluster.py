"""Fan-out on Ray: ensemble members and lab cells as Ray tasks, on this machine or on a cluster.

`--ray ADDRESS` on `ensemble` and `lab` (ADDRESS: `local` starts a Ray instance here, `auto` joins the cluster this
machine belongs to, `ray://host:10001` connects a Ray client). Each run to train becomes one task declaring its
resources (`--ray-cpus` CPUs, default 1, and `--ray-gpus` GPUs, a fraction allowed); the task trains in a scratch
folder on whichever node runs it and returns the run folder's files, which the driver writes under the usual
contract (runs.py) — so nodes need no shared file system, and a run folder is complete or absent.

Seeding is exactly a local run's (the config carries every seed, and the task sets `train.threads` to its CPU
count), so a member trained on Ray has bit-identical weights to the same member trained locally with the same thread
count on the same kind of device. An interrupted run (last.safetensors present) is sent along and resumed. Ray
retries a task whose worker or node died (`max_retries`); a task that fails in digitlab's code is reported with its
name and the node it ran on. Ray is an optional extra: `pip install 'digitlab[cluster]'`.

A task's scratch folder is named by the run it trains (`task_scratch`) and held under an exclusive `flock`, which
the kernel releases when the process dies: so a retry that lands on the node where a worker was killed finds the
folder unlocked, takes it over and resumes from the killed attempt's last checkpoint (bit-identical, as every
resume), rather than training from the start, and removes it when done. A killed attempt's folder that no retry
took over (it ran on another node) is removed by a later task on its node once untouched for an hour.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import console
from .checkpoint import read_checkpoint
from .config import RunConfig, from_dict, override, to_dict
from .errors import DigitlabError
from .files import atomic_write, hold_lock, is_locked
from .runs import LAST, METRICS, RUN_LOCK
from .train import train

TASK_RETRIES = 3  # a worker process or node lost mid-task: Ray runs the task again (resuming, on the same node)
SCRATCH_PREFIX = "digitlab-task-"
STALE_AFTER_S = 3600  # a killed attempt's scratch, unlocked and untouched this long: its retry ran on another node


@dataclass(frozen=True)
class RayOptions:
    address: str = "local"  # local, auto or ray://host:port
    cpus: float = 1.0  # CPUs per task (also the task's torch threads)
    gpus: float = 0.0  # GPUs per task; a fraction shares a GPU between tasks

    def __post_init__(self):
        if self.address not in ("local", "auto") and not self.address.startswith("ray://"):
            raise DigitlabError(f"--ray {self.address!r}: expected local, auto or ray://host:port")
        if not (0 < self.cpus <= 1024 and 0 <= self.gpus <= 64):
            raise DigitlabError(f"--ray-cpus {self.cpus:g} / --ray-gpus {self.gpus:g}: expected CPUs in (0, 1024], "
                                "GPUs in [0, 64]")  # fmt: skip


def connect(address: str):
    """The ray module, initialised: 'local', 'auto' or a 'ray://host:port' client address."""
    try:
        import ray
    except ImportError:
        raise DigitlabError("--ray needs Ray: pip install 'digitlab[cluster]'") from None
    if not ray.is_initialized():
        options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        try:
            ray.init(address=None if address == "local" else address, **options)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise DigitlabError(f"--ray {address}: cannot connect ({str(e)[:200]})") from None
    return ray


def pack(folder: Path) -> dict[str, bytes]:
    """A run folder's files (flat: runs have no subfolders), skipping temporary files."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


def unpack(files: dict[str, bytes], folder: Path) -> None:
    """Write files into `folder`, each atomically; metrics.json last, since its presence marks a finished run."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(files, key=lambda n: n == "metrics.json"):
        if "/" in name or name.startswith("."):
            raise DigitlabError(f"a task returned an odd file name {name!r}")
        with atomic_write(folder / name) as f:
            f.write(files[name])


@contextlib.contextmanager
def task_scratch(key: str):
    """This node's scratch folder for the task `key`, locked for this process and removed at the end. The folder of
    an earlier attempt whose worker was killed is found unlocked and taken over, with whatever it holds; one still
    locked by a live process (the same run trained twice at once) is left alone for a fresh folder."""
    ours = f"{SCRATCH_PREFIX}{socket.gethostname()}-"
    folder = Path(tempfile.gettempdir()) / f"{ours}{key}"
    folder.mkdir(exist_ok=True)
    try:
        lock = hold_lock(folder / RUN_LOCK)
    except BlockingIOError:
        lock, folder = None, Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    for other in folder.parent.glob(f"{ours}*"):  # killed attempts whose retries ran elsewhere, long ago
        if other != folder and time.time() - newest_change(other) > STALE_AFTER_S and not is_locked(other / RUN_LOCK):
            shutil.rmtree(other, ignore_errors=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if lock is not None:
            lock.close()


def newest_change(folder: Path) -> float:
    """The latest modification time of anything in `folder` (a checkpoint written, a file unpacked); now, for a
    folder changing under this look (being removed by its own task, or written)."""
    try:
        return max((p.stat().st_mtime for p in folder.rglob("*")), default=folder.stat().st_mtime)
    except OSError:
        return time.time()


def progress(checkpoint: Path) -> tuple[int, int]:
    """(epochs done, steps into the next) of a last.safetensors; (-1, 0) when there is none."""
    if not checkpoint.is_file():
        return -1, 0
    info = read_checkpoint(checkpoint)[1]
    return info.get("epoch", 0), info.get("in_epoch", {}).get("step", 0)


def train_task(config: dict, name: str, files: dict[str, bytes], key: str) -> tuple[dict[str, bytes], str, str]:
    """Runs on a Ray worker: train (or resume) one run in this node's scratch folder for it; returns the run's files,
    this node, and where training resumed ("" from the start). It resumes from whichever is further on: the files
    sent (an interrupted run) or what a killed attempt of this task left on this node."""
    import ray

    run_config = from_dict(RunConfig, config)
    with task_scratch(key) as scratch:
        run_dir, sent = scratch / name, scratch / "sent"
        source = "left on this node by a killed attempt"
        if files and not (run_dir / METRICS).is_file():
            unpack(files, sent)
            if progress(sent / LAST) > progress(run_dir / LAST):
                shutil.rmtree(run_dir, ignore_errors=True)
                sent.rename(run_dir)
                source = "sent with the task"
        epoch, step = progress(run_dir / LAST)
        if (run_dir / METRICS).is_file():
            resumed = f"the finished run {source}"  # killed after training, before its files were returned
        elif epoch >= 0:
            resumed = f"epoch {epoch + 1}, step {step}, {source}"
            train(run_config, resume=run_dir, log=lambda *_: None)
        else:
            resumed = ""
            shutil.rmtree(run_dir, ignore_errors=True)  # a killed attempt's folder from before its first checkpoint
            train(run_config, out=run_dir, log=lambda *_: None)
        return pack(run_dir), ray.util.get_node_ip_address(), resumed


def train_on_ray(work: dict[Path, RunConfig], options: RayOptions, log=print) -> None:
    """Train every run of `work` (run folder -> config) as a Ray task; write each folder as its task returns."""
    ray = connect(options.address)
    cpus, gpus, threads = options.cpus, options.gpus, max(1, int(options.cpus))
    remote = ray.remote(train_task).options(num_cpus=cpus, num_gpus=gpus, max_retries=TASK_RETRIES)
    pending = {}
    for run_dir, config in work.items():
        config = override(config, {"train.threads": threads, "train.device": "cuda" if gpus else "cpu"})
        files = pack(run_dir) if (run_dir / LAST).is_file() else {}
        # the task's scratch key: the run as asked (its config and the driver's folder for it), the same on a retry
        key = hashlib.sha256(json.dumps([to_dict(config), str(run_dir.resolve())], sort_keys=True).encode())
        pending[remote.remote(to_dict(config), run_dir.name, files, key.hexdigest()[:16])] = run_dir
    resources = ray.cluster_resources()
    log(f"Ray: {len(pending)} tasks of {cpus:g} CPU{f' + {gpus:g} GPU' if gpus else ''} each, on "
        f"{resources.get('CPU', 0):g} CPUs / {resources.get('GPU', 0):g} GPUs")  # fmt: skip
    errors, total = [], len(pending)
    with console.bar("Ray tasks", total, "runs") as bar:
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            run_dir = pending.pop(ref)
            bar.update(advance=1)
            try:
                files, node, resumed = ray.get(ref)
            except ray.exceptions.RayTaskError as e:  # digitlab's own error inside the task: name it and its node
                cause = e.cause if isinstance(e.cause, Exception) else e
                errors.append(f"[{run_dir.name}] failed on node {getattr(e, 'ip', '?')}: {cause}")
                log(errors[-1])
                continue
            except ray.exceptions.RayError as e:  # retries exhausted: the worker or node kept dying
                errors.append(f"[{run_dir.name}] lost after {TASK_RETRIES} retries: {type(e).__name__}: {str(e)[:200]}")
                log(errors[-1])
                continue
            unpack(files, run_dir)
            resumed = f", resumed from {resumed}" if resumed else ""
            log(f"[{run_dir.name}] done on node {node}{resumed} ({total - len(pending)}/{total})")
    if errors:
        raise DigitlabError("\n".join(errors))
