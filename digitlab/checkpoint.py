"""One checkpoint format for training, resuming, evaluating and exporting: a safetensors file, no pickle.

The file holds the model's tensors under `model.`, and optionally the optimizer's state under `optim.`, random
generator states under `rng.` and a weight average under `ema.`. Its metadata holds JSON: the resolved `RunConfig`,
seed, library versions, git commit and whatever progress counters the trainer passes (epoch, step, optimizer
hyperparameters). So a checkpoint rebuilds its model by itself, and loading one never runs code from the file.
"""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from . import __version__
from .config import RunConfig, from_dict, to_dict
from .errors import DataError
from .files import atomic_write
from .models import build_model
from .runs import json_text

FORMAT = "digitlab-checkpoint/1"


def environment() -> dict:
    """Versions and source revision recorded with every run."""
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "digitlab": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit,
    }


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    config: RunConfig,
    meta: dict | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    rng: dict[str, torch.Tensor] | None = None,
    extra: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write atomically: the previous file at `path` survives any failure. `extra`: more named tensors (the
    trainer's weight average, `ema.*`)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    info = {"format": FORMAT, "config": to_dict(config), "env": environment(), **(meta or {})}
    if optimizer is not None:
        state = optimizer.state_dict()
        for index, slots in state["state"].items():
            for slot, value in slots.items():
                tensors[f"optim.{index}.{slot}"] = torch.as_tensor(value).detach().cpu().contiguous()
        info["optimizer_param_groups"] = state["param_groups"]
    for name, value in (rng or {}).items():
        tensors[f"rng.{name}"] = value.cpu().contiguous()
    tensors.update({name: value.detach().cpu().contiguous() for name, value in (extra or {}).items()})
    # strict JSON: a run without a validation split has NaN validation figures, written as null (read back as NaN)
    blob = save_bytes(tensors, metadata={"digitlab": json_text(info, indent=None)})
    with atomic_write(path) as f:
        f.write(blob)


def read_safetensors(path: Path, what: str) -> tuple[dict[str, torch.Tensor], object]:
    """(tensors, the JSON under the 'digitlab' metadata key) of a safetensors file; one clear error when it is not."""
    blob = path.read_bytes()
    try:
        tensors = load_bytes(blob)
        header = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])
        return tensors, json.loads(header["__metadata__"]["digitlab"])
    except (SafetensorError, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise DataError(path, None, f"not a digitlab safetensors {what} ({str(e)[:120]})") from None


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of a checkpoint file, validated as safetensors with digitlab metadata."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "checkpoint not found")
    tensors, info = read_safetensors(path, "checkpoint")
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        found = info.get("format") if isinstance(info, dict) else type(info).__name__
        raise DataError(path, None, f"checkpoint format {found!r}, expected {FORMAT!r}")
    history = info.get("history")
    if isinstance(history, list):  # null is how a non-finite figure is written (json_text): NaN again here
        info["history"] = [
            {k: float("nan") if v is None else v for k, v in r.items()} if isinstance(r, dict) else r for r in history
        ]
    check_metadata(path, info)
    return tensors, info


# The metadata a checkpoint may carry, each with the JSON type it must have; a crafted file gets one clear error.
METADATA_TYPES = {"config": dict, "env": dict, "epoch": int, "history": list, "optimizer_param_groups": list,
                  "in_epoch": dict, "selected_by": str}  # fmt: skip
HISTORY_NUMBERS = ("epoch", "val_accuracy", "val_loss", "train_loss", "train_accuracy")


def check_metadata(path: Path, info: dict) -> None:
    """Types of the metadata fields, the history's records, and the fields resuming needs."""
    problem = next((f"'{k}' is {type(info[k]).__name__}, expected {t.__name__}" for k, t in METADATA_TYPES.items()
                    if k in info and not isinstance(info[k], t)), None)  # fmt: skip
    if "config" not in info:
        problem = "no 'config' in the metadata"
    for record in info.get("history", []) if problem is None else []:
        if not isinstance(record, dict) or not all(
            isinstance(record.get(k), (int, float)) and not isinstance(record.get(k), bool) for k in HISTORY_NUMBERS
        ):
            problem = f"history record {str(record)[:60]} lacks numbers for {', '.join(HISTORY_NUMBERS)}"
            break
    in_epoch = info.get("in_epoch", {}) if problem is None else {}
    if in_epoch and not (isinstance(in_epoch.get("step"), int) and isinstance(in_epoch.get("correct"), int)
                         and isinstance(in_epoch.get("loss_sum"), (int, float))):  # fmt: skip
        problem = "'in_epoch' must hold an integer step and correct count and a number loss_sum"
    if problem:
        raise DataError(path, "metadata", problem)


def recorded_config(path: str | Path, info: dict) -> RunConfig:
    """The RunConfig in a checkpoint's metadata (`read_checkpoint` checked that there is one)."""
    return from_dict(RunConfig, info["config"], where=f"{path}: config")


def checkpoint_config(path: str | Path) -> RunConfig:
    """The config a checkpoint was trained with; no model is built."""
    return recorded_config(path, read_checkpoint(path)[1])


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu"):
    """(model in eval mode, RunConfig, metadata, all tensors); tensor shapes are checked against the config."""
    tensors, info = read_checkpoint(path)
    config = recorded_config(path, info)
    model = build_model(config.model)
    expected = model.state_dict()
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing or unexpected:
        raise DataError(
            path,
            None,
            f"tensors do not match the {config.model.arch} model: missing {sorted(missing)[:3]}"
            f", unexpected {sorted(unexpected)[:3]}",
        )
    for key, value in state.items():
        if value.shape != expected[key].shape or value.dtype != expected[key].dtype:
            raise DataError(
                path,
                f"tensor model.{key}",
                f"shape {tuple(value.shape)} {value.dtype}, expected "
                f"{tuple(expected[key].shape)} {expected[key].dtype}",
            )
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise DataError(path, f"tensor model.{key}", "holds NaN or infinite values (not finite): corrupted")
    model.load_state_dict(state)
    return model.to(device, memory_format=torch.channels_last).eval(), config, info, tensors


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], info: dict, path: str | Path = "checkpoint"
) -> None:
    """Put a checkpoint's optimizer state back into a freshly built optimizer of the same kind."""
    state: dict[int, dict] = {}
    try:
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, slot = key.split(".", 2)
                state.setdefault(int(index), {})[slot] = value
        optimizer.load_state_dict({"state": state, "param_groups": info["optimizer_param_groups"]})
        # The file holds the moments contiguous; PyTorch's fused kernels read each tensor's memory in its weight's
        # order (channels-last), so lay them out alike
        for parameter, moments in optimizer.state.items():
            for slot, value in list(moments.items()):
                if value.shape == parameter.shape:
                    moments[slot] = torch.empty_like(parameter, dtype=value.dtype).copy_(value)
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as e:
        raise DataError(path, "optimizer state", f"does not fit the {type(optimizer).__name__} optimizer of this "
                        f"config ({type(e).__name__}: {str(e)[:100]})") from None  # fmt: skip


def save_teacher(path: str | Path, probabilities: torch.Tensor, teacher: str) -> None:
    """A distilled run's teacher probabilities (N, classes) for its training images, with the teacher's name."""
    meta = {"teacher": teacher, "train_images": len(probabilities)}
    blob = save_bytes({"probabilities": probabilities.float().contiguous()}, metadata={"digitlab": json.dumps(meta)})
    with atomic_write(path) as f:
        f.write(blob)


def load_teacher(path: str | Path, teacher: str, images: int) -> torch.Tensor:
    """The probabilities `save_teacher` wrote, checked to be `teacher`'s for `images` training images."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "missing: a distilled run keeps its teacher's probabilities here "
                        "(digitlab distill writes them)")  # fmt: skip
    tensors, meta = read_safetensors(path, "teacher file")
    probabilities = tensors.get("probabilities", torch.empty(0))
    expected = {"teacher": teacher, "train_images": images}
    if meta != expected or probabilities.dim() != 2 or len(probabilities) != images:
        raise DataError(path, None, f"made for {meta}, not for this run ({expected})")
    if not probabilities.isfinite().all() or (probabilities < 0).any():
        raise DataError(path, "tensor probabilities", "holds negative, NaN or infinite values: corrupted")
    return probabilities
