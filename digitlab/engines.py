"""Inference engines: one interface from a saved model to probabilities, whatever runs it.

An `Engine` has a `name`, an `identity` (what a server may show: the engine, the model file's name, the epoch, never
an absolute path) and `predict_proba(images)`: uint8 or float pixels (N, 1, 28, 28), values 0..255, to
probabilities (N, classes) as a NumPy array. Three engines implement it:

- `TorchEngine`: the checkpoint's model in PyTorch, on any device; `torch-bf16` runs it under bf16 autocast (on a
  CPU with AVX512-BF16, an AMD EPYC Zen 4, 1.10-1.30x ONNX Runtime fp32's images/s at batch 64 for the reference
  CNN and 1.58x for the stacked CNN, accuracy unchanged, bench_inference.py and docs/results-2026-12-04c; on an
  Intel Xeon with AMX 1.40x and 2.65x, docs/results-2026-12-04d; slower at batch 1, and far slower on CPUs without
  bf16 arithmetic, so 'auto' never picks it);
- `OnnxEngine`: an exported model.onnx (or `export --int8`'s model.int8.onnx, given as the file) in ONNX Runtime
  (about twice PyTorch's speed on a 2-core CPU at batch 1 to 256, benchmarks/bench_inference.py; slower on one huge
  batch, so it is fed in chunks of 256);
- `EnsembleEngine`: the average of its members' engines, over test-time-augmentation views when the ensemble asks;
- `TTAEngine`: any engine averaged over test-time views (augment.tta_views: one-pixel shifts, and their mirrors
  for a model trained on mirrored images), for `--tta` and an ensemble's members.

`load_engine(target, engine, device, tta)` is the one way in: a run folder, an ensemble folder, a checkpoint or an
.onnx file; 'auto' picks ONNX Runtime when it is installed and the device is the CPU, exporting the run's model.onnx
once and reusing it while it was exported from the model.safetensors beside it (the checkpoint's SHA-256, recorded
in the ONNX file; otherwise exported again), and falling back to PyTorch where it cannot be written.
evaluate, predict, serve and the ensemble's measurements all take an Engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from .augment import mirrored_in_training, tta_views
from .checkpoint import checkpoint_config, load_checkpoint
from .config import ENGINE_NAMES
from .errors import DigitlabError
from .evaluate import predict_logits, resolve_device
from .export import export_onnx, exported_from, onnx_session, onnxruntime_available, run_onnx
from .runs import is_ensemble, model_path, model_sha256, read_manifest

TORCH_ENGINES = ("torch", "torch-bf16")
CHUNK = 256  # images per forward pass: larger batches spill the CPU caches (see the module docstring)


class Engine(Protocol):
    name: str
    identity: dict

    def predict_proba(self, images: torch.Tensor | np.ndarray) -> np.ndarray: ...


def shown_name(path: Path) -> str:
    """A model file as a server may show it: its folder's name and its own, not where it lives on disk."""
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


class TorchEngine:
    def __init__(self, checkpoint: Path, device: str = "cpu", bf16: bool = False):
        self.model, self.config, info, _ = load_checkpoint(checkpoint, resolve_device(device))
        self.bf16 = bf16  # the weights stay fp32; autocast runs convolutions and matmuls in bf16
        self.device_type = next(self.model.parameters()).device.type
        self.name = "torch-bf16" if bf16 else "torch"
        self.identity = {"engine": self.name, "model": shown_name(checkpoint), "epoch": info.get("epoch")}

    def predict_proba(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16):
            logits = predict_logits(self.model, torch.as_tensor(images), batch_size=CHUNK)
        return torch.softmax(logits, 1).numpy()


class OnnxEngine:
    name = "onnx"

    def __init__(self, path: Path, checkpoint: Path | None = None):
        self.session = onnx_session(path)
        self.identity = {"engine": self.name, "model": shown_name(path)}
        self.checkpoint = checkpoint  # the PyTorch checkpoint it was exported from, when known (for saliency)

    def predict_proba(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        return run_onnx(self.session, np.asarray(images, dtype=np.float32), CHUNK)


class TTAEngine:
    """Averages an engine's probabilities over the test-time views of each batch (5, or 10 with `mirror`)."""

    def __init__(self, inner: Engine, mirror: bool = False):
        self.inner, self.mirror = inner, mirror
        self.name = inner.name
        self.identity = {**inner.identity, "tta": "shifts and mirrors" if mirror else "shifts"}

    def predict_proba(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        views = tta_views(torch.as_tensor(images), self.mirror)
        return sum(self.inner.predict_proba(view) for view in views) / len(views)


class EnsembleEngine:
    """Averages the members' probabilities (each over the TTA views too when `tta`)."""

    name = "ensemble"

    def __init__(self, folder: str | Path, engine: str = "auto", device: str = "cpu", tta: bool | None = None):
        folder = Path(folder)
        manifest = read_manifest(folder)
        self.tta = manifest["tta"] if tta is None else tta
        self.members = [load_engine(folder / name, engine, device, self.tta) for name in manifest["members"]]
        self.identity = {
            "engine": f"ensemble of {len(self.members)} ({self.members[0].name})",
            "model": folder.name,
            "tta": self.tta,
        }

    def predict_proba(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        images = torch.as_tensor(images)
        return sum(member.predict_proba(images) for member in self.members) / len(self.members)


def load_engine(target: str | Path, engine: str = "auto", device: str = "cpu", tta: bool | None = None) -> Engine:
    """An engine for a run folder, an ensemble folder, a checkpoint or an .onnx file. `tta`: average over the
    test-time views (None: an ensemble's own switch, off for a single model)."""
    check_engine(engine)
    target = Path(target)
    if is_ensemble(target):
        return EnsembleEngine(target, engine, device, tta)
    if target.suffix == ".onnx":
        # a bare ONNX file carries no training config: its views are the shifts alone
        return TTAEngine(onnx_file_engine(target, engine)) if tta else onnx_file_engine(target, engine)
    checkpoint = model_path(target)
    runner = model_engine(checkpoint, engine, device)
    return TTAEngine(runner, mirrored_in_training(checkpoint_config(checkpoint).augment)) if tta else runner


def check_engine(engine: str) -> None:
    """Refuse an unknown engine, or ONNX Runtime where it is not installed: before any work (an ensemble checks
    before its members train), not after it."""
    if engine not in ENGINE_NAMES:
        raise DigitlabError(f"engine '{engine}' is not one of: {', '.join(ENGINE_NAMES)}")
    if engine == "onnx" and not onnxruntime_available():
        raise DigitlabError("--engine onnx needs onnxruntime: pip install 'digitlab[export]'")


def model_engine(checkpoint: Path, engine: str, device: str) -> Engine:
    """A checkpoint's model in ONNX Runtime ('auto' on the CPU when installed, exported beside it) or PyTorch."""
    if engine in TORCH_ENGINES:
        return TorchEngine(checkpoint, device, bf16=engine == "torch-bf16")
    use_onnx = engine == "onnx" or (engine == "auto" and device in ("cpu", "auto") and onnxruntime_available())
    if not use_onnx:
        return TorchEngine(checkpoint, device)
    onnx_path = checkpoint.with_suffix(".onnx")  # a run folder's model.safetensors -> model.onnx beside it
    exported = reusable_onnx(onnx_path, checkpoint)
    if exported is None:
        try:
            export_onnx(checkpoint, onnx_path, verify=False, force=True)  # replaces a stale or damaged export
        except DigitlabError:
            if engine == "onnx":
                raise
            return TorchEngine(checkpoint, device)  # 'auto' on a read-only run folder or without onnx: PyTorch
        exported = OnnxEngine(onnx_path, checkpoint)
    return exported


def reusable_onnx(onnx_path: Path, checkpoint: Path) -> OnnxEngine | None:
    """The ONNX engine of an earlier export beside the checkpoint, when that export was made from this very
    checkpoint (its recorded SHA-256); None when it is missing, unreadable or of another model (a model.safetensors
    copied over or restored from a backup keeps an old time, so times cannot tell)."""
    if not onnx_path.is_file():
        return None
    try:
        exported = OnnxEngine(onnx_path, checkpoint)
    except DigitlabError:  # cut short or damaged: a derived file, made again
        return None
    return exported if exported_from(exported.session) == model_sha256(checkpoint) else None


def saliency_possible(engine: Engine) -> bool:
    engine = engine.inner if isinstance(engine, TTAEngine) else engine  # saliency of the plain view
    return isinstance(engine, TorchEngine) or (isinstance(engine, OnnxEngine) and engine.checkpoint is not None)


def saliency_model(engine: Engine) -> torch.nn.Module | None:
    """The PyTorch model behind an engine, for gradients: a torch engine's own, the checkpoint an ONNX engine was
    exported from (loaded now); None for an ensemble or a bare .onnx file. With TTA: the model on the plain
    view."""
    engine = engine.inner if isinstance(engine, TTAEngine) else engine
    if isinstance(engine, TorchEngine):
        return engine.model
    if isinstance(engine, OnnxEngine) and engine.checkpoint is not None:
        return load_checkpoint(engine.checkpoint)[0]
    return None


def onnx_file_engine(path: Path, engine: str) -> OnnxEngine:
    if engine in TORCH_ENGINES:
        raise DigitlabError(f"{path} is an ONNX file: it runs with --engine onnx only")
    if not onnxruntime_available():
        raise DigitlabError("running an .onnx model needs onnxruntime: pip install 'digitlab[export]'")
    if not path.is_file():
        raise DigitlabError(f"{path}: no such ONNX file")
    return OnnxEngine(path)
