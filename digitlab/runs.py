"""The run-folder contract: every file name of a run, an ensemble and a lab, and the one rule for reusing them.

A run folder holds `config.json`, `history.json`/`.csv`, `curves.png`, `model.safetensors` (the chosen weights),
`last.safetensors` (for `--resume`) and `metrics.json` (present once the run finished). An ensemble folder holds
`ensemble.json` and one run folder per member; a lab folder holds `lab.json`, its tables and figures and `runs/`.

The reuse rule (`claim_run`): a folder is reused only when the config recorded in it equals the requested one — as
finished (metrics.json present) or to resume (last.safetensors present) — and no other process is training in it
(`lock_run`: its `.lock` file under an flock for as long as the training process lives). A folder holding anything
else is never deleted or mixed up silently: the command refuses with one line naming the differing fields and the
two ways out (`--force`, which retrains, or another `--out`). Train, ensemble members, lab cells (local, worker
process or Ray task) all go through it.

Files derived from a run's model (`model.onnx`, `calibration.json`, `robustness.json`) record the SHA-256 of the
`model.safetensors` they were made from (`model_sha256`), and are reused only beside that very model: a model
replaced since (copied over, restored from a backup with its old time) makes them be made again, or refused.

Outputs never clobber (`check_output`): an output that is one of the command's inputs, or a file a run folder owns,
is refused, and replacing any other existing file needs `--force`. Its JSON files are strict JSON (`write_json`): a
figure that does not exist, such as the validation accuracy of a run trained without a validation split, is null.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from datetime import datetime
from pathlib import Path

from .errors import DigitlabError
from .files import atomic_write, hold_lock, is_locked

CONFIG = "config.json"
HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"
CURVES = "curves.png"
MODEL = "model.safetensors"
LAST = "last.safetensors"
METRICS = "metrics.json"
ONNX = "model.onnx"
ONNX_INT8 = "model.int8.onnx"  # export --int8
REPORT = "report.html"
ROBUSTNESS = "robustness.json"
ROBUSTNESS_VAL = "robustness_val.json"  # the same measured on the validation split
CALIBRATION = "calibration.json"
OOD = "ood.safetensors"
RUN_LOCK = ".lock"  # flock-held by the process training in the folder (lock_run)
TEACHER = "teacher.safetensors"  # distill.py: the teacher's probabilities for the student's training images
MANIFEST = "ensemble.json"
LAB = "lab.json"
# How a run is executed, not what it computes: these may differ between a recorded run and the request for it
# (a member trained in a worker with 1 thread is the same member; a cache moved to another folder holds the same data).
EXECUTION_FIELDS = ("train.device", "train.threads", "train.checkpoint_every", "data.data_dir", "train.log",
                    "train.log_uri", "train.log_parent", "train.compile")  # fmt: skip
# What a run folder owns
RUN_FILES = (CONFIG, HISTORY_JSON, HISTORY_CSV, CURVES, MODEL, LAST, METRICS, MANIFEST, LAB, TEACHER)


def json_ready(data):
    """`data` with every NaN or infinite float as None: JSON has no NaN, and strict parsers (JavaScript's, jq, Go's)
    refuse the `NaN` that Python writes by default."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: json_ready(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_ready(value) for value in data]
    return data


def json_text(data, indent: int | None = 2, default=None) -> str:
    """Strict JSON, non-finite numbers as null: what every file digitlab writes and `evaluate --json` print."""
    return json.dumps(json_ready(data), indent=indent, allow_nan=False, default=default)


def write_json(path: str | Path, data, default=None) -> None:
    """`json_text`, written atomically (the previous file stays until the new one is complete)."""
    with atomic_write(path, "w") as f:
        f.write(json_text(data, default=default))


def read_json(path: Path, what: str):
    """A JSON file the user cannot have meant to be malformed: one clear error when it is."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DigitlabError(f"{path}: no {what} here") from None
    except (OSError, ValueError) as e:
        raise DigitlabError(f"{path}: not a readable {what} ({str(e)[:100]})") from None


def is_run(folder: Path) -> bool:
    return (Path(folder) / CONFIG).is_file() or (Path(folder) / MODEL).is_file()


def is_ensemble(folder: str | Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def model_path(run: str | Path) -> Path:
    """A run folder's chosen model, or a checkpoint file given directly."""
    run = Path(run)
    if run.is_dir():
        if not (run / MODEL).is_file():
            raise DigitlabError(f"{run}: no {MODEL} in this folder; is it a digitlab run folder?")
        return run / MODEL
    if not run.exists():
        raise DigitlabError(f"{run}: no such run folder or checkpoint file")
    return run


def model_sha256(target: str | Path) -> str | None:
    """SHA-256 (hex) of the model file a target runs: a run folder's model.safetensors or a checkpoint given
    directly; None for an ensemble folder or an ONNX file, which no single checkpoint stands behind."""
    target = Path(target)
    if is_ensemble(target) or target.suffix == ".onnx":
        return None
    digest = hashlib.sha256()
    with open(model_path(target), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: Path) -> dict:
    manifest = read_json(Path(folder) / MANIFEST, "ensemble manifest")
    try:
        names, tta = list(manifest["members"]), bool(manifest["tta"])
    except (KeyError, TypeError) as e:
        raise DigitlabError(f"{Path(folder) / MANIFEST}: not a readable ensemble manifest ({e})") from None
    if not names or any(not isinstance(n, str) or "/" in n or "\\" in n or n.startswith(".") for n in names):
        raise DigitlabError(f"{Path(folder) / MANIFEST}: members must be folder names inside the ensemble")
    return {**manifest, "members": names, "tta": tta}


def has_member_splits(target: str | Path) -> bool:
    """An ensemble whose members each held out their own validation split (`ensemble --member-splits`): every image
    may have trained some member, so no split validates the ensemble as a whole."""
    return is_ensemble(target) and bool(read_manifest(Path(target)).get("member_splits"))


def recorded_run(target: str | Path) -> Path:
    """The run whose config speaks for `target`: the run or checkpoint itself, or an ensemble's first member."""
    target = Path(target)
    return target / read_manifest(target)["members"][0] if is_ensemble(target) else target


def with_defaults(recorded: dict) -> dict:
    """A config with the fields it lacks filled in at their defaults: a run recorded before a field was added to
    digitlab (whose default reproduces what that version did) is not retrained just because the config grew."""
    from .config import RunConfig, from_dict, to_dict

    try:
        return to_dict(from_dict(RunConfig, recorded))
    except DigitlabError:  # unreadable: compared as it is, and the differences say why
        return recorded


def differences(recorded, requested, prefix: str = "") -> list[str]:
    """'field: old -> new' for every leaf where two config dicts differ."""
    if isinstance(recorded, dict) and isinstance(requested, dict):
        out = []
        # plain fields (a recipe's name) before the sections they explain, so a message's first items say most
        for key in sorted(set(recorded) | set(requested), key=lambda k: (isinstance(recorded.get(k), dict), k)):
            out += differences(recorded.get(key, "(absent)"), requested.get(key, "(absent)"), f"{prefix}{key}.")
        return out
    name = prefix.rstrip(".")
    return [] if recorded == requested or name in EXECUTION_FIELDS else [f"{name}: {recorded!r} -> {requested!r}"]


def remove_run(folder: Path) -> None:
    """Delete a folder only when it is recognisably digitlab's (a run, ensemble or lab) or empty, and no process is
    training in it or in a run folder inside it (an ensemble's member, a lab's cell)."""
    folder = Path(folder)
    if not folder.exists():
        return
    for lock in folder.rglob(RUN_LOCK) if folder.is_dir() else ():
        if is_locked(lock):
            raise DigitlabError(busy(lock.parent))
    if folder.is_dir() and (holds_nothing(folder) or any((folder / f).exists() for f in RUN_FILES)):
        shutil.rmtree(folder)
        return
    raise DigitlabError(f"{folder} exists and is not a digitlab folder: it was left alone; pick another --out")


def lock_run(folder: Path):
    """Hold the run folder for this process while it trains (`hold_lock` on its .lock file; the kernel lets go when
    the process ends, however it ends); one clear error when another live process is training in it."""
    try:
        return hold_lock(Path(folder) / RUN_LOCK)
    except BlockingIOError:
        raise DigitlabError(busy(folder)) from None


def busy(folder: Path) -> str:
    return f"{folder} is being trained by another process right now: wait for it to finish, or pick another --out"


def holds_nothing(folder: Path) -> bool:
    """A folder with no files but hidden ones (its lock, a temporary file of a write cut short) holds no work."""
    return not any(not p.name.startswith(".") for p in Path(folder).iterdir())


def claim_run(folder: Path, config_dict: dict, force: bool = False) -> str:
    """'finished', 'resume' or 'new' for a run of `config_dict` in `folder`; refuses a folder holding other work, or
    one that another process is training in (never removed or trained twice at once)."""
    folder = Path(folder)
    if folder.is_dir() and is_locked(folder / RUN_LOCK):
        raise DigitlabError(busy(folder))
    if force:
        remove_run(folder)
    if not folder.exists() or (folder.is_dir() and holds_nothing(folder)):
        return "new"
    if not folder.is_dir() or not (folder / CONFIG).is_file():
        raise DigitlabError(f"{folder} exists and is not a digitlab run folder: pick another --out")
    recorded = read_json(folder / CONFIG, "run config")
    recorded = recorded.get("config") if isinstance(recorded, dict) else None
    if isinstance(recorded, dict):
        changed = differences(with_defaults(recorded), with_defaults(config_dict))
    else:
        changed = ["config: unreadable"]
    if changed:
        raise DigitlabError(
            f"{folder} holds a run with another config ({'; '.join(changed[:4])}"
            f"{'; ...' if len(changed) > 4 else ''}): pass --force to retrain it, or pick another "
            "--out"
        )
    if (folder / METRICS).is_file():
        return "finished"
    if (folder / LAST).is_file():
        return "resume"
    shutil.rmtree(folder)  # config written, stopped before the first checkpoint: nothing trained to keep
    return "new"


def new_run_dir(out: str | Path | None) -> Path:
    """A fresh run folder: `out` if it does not exist or is empty, else runs/<date-time>."""
    if out is None:
        out = Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
        while out.exists():
            out = out.with_name(out.name + "-1")
    out = Path(out)
    if out.exists() and (not out.is_dir() or not holds_nothing(out)):
        raise DigitlabError(f"{out} already exists and is not an empty folder: pick another --out, or --resume {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DigitlabError(f"cannot create run folder {out}: {e.strerror or e}") from None
    return out


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_output(out: str | Path, inputs: tuple = (), force: bool = False, owned_name: str | None = None) -> Path:
    """Refuse an output path that would destroy something: one of the command's `inputs` (or a file inside an input
    folder), a file a run/ensemble/lab folder owns (unless it is `owned_name`, the file this command itself
    derives there), or any existing file unless `force`."""
    out = Path(out)
    for source in (Path(p) for p in inputs if p is not None):
        if _same_file(out, source):
            raise DigitlabError(f"--out {out} is also an input of this command: pick another output path")
        if source.is_dir() and out.name in RUN_FILES and _same_file(out.parent, source):
            raise DigitlabError(f"--out {out} would replace a file of the run folder {source}: pick another path")
    if out.is_dir():
        raise DigitlabError(f"--out {out} is a folder: expected a file path")
    parent = out.parent
    if (
        out.name != owned_name
        and (is_run(parent) or is_ensemble(parent) or (parent / LAB).is_file())
        and out.name in RUN_FILES + (ONNX, ONNX_INT8, REPORT, ROBUSTNESS, ROBUSTNESS_VAL, CALIBRATION, OOD)
    ):
        raise DigitlabError(f"--out {out} would replace a file that the run folder {parent} owns: pick another path")
    if out.exists() and not force:
        raise DigitlabError(f"{out} already exists: pass --force to replace it, or pick another --out")
    return out
