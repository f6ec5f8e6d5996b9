"""Export to ONNX and run inference with either engine: PyTorch or ONNX Runtime.

The exported graph takes raw pixels — float32 (N, 1, 28, 28), values 0..255 — with a dynamic batch dimension, and
returns `probabilities` (N, 10): the normalisation and the softmax are inside it, so callers do no preprocessing.
Before export, BatchNorm layers and the input normalisation are folded into the following convolution or linear
layer (`fold_batchnorm`: exact algebra, 5-10 % faster in ONNX Runtime). `export_onnx` checks the file with the onnx
checker and compares its outputs with the unfolded PyTorch model's on the run's test set.

int8 was measured and left out: ONNX Runtime's static int8 quantisation (QDQ or QOperator, per-channel weights,
2,000 calibration images) ran the reference CNN 10-15 % *slower* than fp32 on an AVX2 CPU without VNNI, and cost
0.04-0.12 points of test accuracy.

An engine turns uint8 images (N, 1, 28, 28) into probabilities. ONNX Runtime runs this small CNN about twice as fast
as PyTorch on a 2-core CPU at batch 1 to 256 (benchmarks/bench_inference.py), but slower on one huge batch, so it is
fed in chunks of 256. `load_engine(..., "auto")` picks ONNX Runtime when it is installed, exporting the run's
model.onnx once and reusing it while it is newer than model.safetensors.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .errors import DataError, DigitlabError
from .evaluate import model_path, predict_logits
from .formats import atomic_write
from .models import Normalize

CHUNK = 256  # images per engine call: larger batches spill the CPU caches (see module docstring)


@contextlib.contextmanager
def quiet_logger(name: str):
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def leaf_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model as the chain of layers its forward runs (both architectures are plain chains)."""
    return [m for m in model.modules() if not list(m.children())]


def affine_of(layer) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(scale, shift) per channel when `layer` is an eval-mode per-channel affine map: BatchNorm or Normalize."""
    if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
        scale = layer.weight / torch.sqrt(layer.running_var + layer.eps)
        return scale, layer.bias - layer.running_mean * scale
    if isinstance(layer, Normalize):
        return 1 / layer.std.reshape(1), -layer.mean.reshape(1) / layer.std
    return None


@torch.no_grad()
def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Sequential:
    """An inference copy of `model` with every BatchNorm (and the input normalisation) folded into the convolution or
    linear layer that follows it, when nothing but Dropout/Identity lies between and the convolution has no padding.

    For y = a * x + c per input channel, W * y + b = (W a) * x + (b + sum W c): exact in real arithmetic, it saves
    one pass over the activations per folded layer. Zero padding would break it (padded zeros are not a*0 + c), so
    padded convolutions keep their BatchNorm; so do BatchNorms followed by ReLU or pooling (the compact model's)."""
    import copy
    layers = [copy.deepcopy(m) for m in leaf_layers(model.eval())]
    out, pending = [], None  # pending: (scale, shift) waiting for the next conv/linear
    for layer in layers:
        if isinstance(layer, (torch.nn.Dropout, torch.nn.Identity)):
            continue
        affine = affine_of(layer)
        if affine is not None and pending is None:
            pending = affine
            held = layer
            continue
        linear = isinstance(layer, torch.nn.Linear)
        conv = isinstance(layer, torch.nn.Conv2d) and all(p == 0 for p in layer.padding)
        if pending is not None and (linear or (conv and layer.padding_mode == "zeros")):
            scale, shift = pending
            shape = (1, -1) if linear else (1, -1, 1, 1)
            weight = layer.weight * scale.reshape(shape)
            bias = layer.bias if layer.bias is not None else torch.zeros(layer.out_channels if conv else
                                                                         layer.out_features)
            summed = layer.weight.sum(dim=(2, 3)) if conv else layer.weight  # (out, in)
            layer.bias = torch.nn.Parameter(bias + summed @ shift.expand(summed.shape[1]))
            layer.weight.copy_(weight)  # last: for a linear layer `summed` is this very tensor
            pending = None
        elif pending is not None:  # not foldable: keep the affine layer where it was
            out.append(held)
            pending = None
            if affine is not None:
                pending, held = affine, layer
                continue
        out.append(layer)
    if pending is not None:
        out.append(held)
    return torch.nn.Sequential(*out).eval()


class WithSoftmax(torch.nn.Module):
    """The graph that is exported: raw pixels in, probabilities out."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(pixels), dim=1)


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def export_onnx(run: str | Path, out: str | Path | None = None, verify: bool = True) -> dict:
    """Write the run's model as ONNX (default RUN_DIR/model.onnx); returns the path and the verification figures."""
    try:
        import onnx
    except ImportError:
        raise DigitlabError("ONNX export needs the export extra: pip install 'digitlab[export]'") from None
    source = model_path(run)
    out = Path(out) if out else source.with_suffix(".onnx")
    model, config, info, _ = load_checkpoint(source)
    graph = WithSoftmax(fold_batchnorm(model.to(memory_format=torch.contiguous_format))).eval()
    example = torch.zeros(2, 1, 28, 28)
    # The exporter prints progress, logs about optional torchvision ops and warns about internals: keep it quiet.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), quiet_logger("torch.onnx"):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(graph, (example,), input_names=["pixels"], output_names=["probabilities"],
                                    dynamic_shapes={"pixels": {0: torch.export.Dim("batch")}}, dynamo=True,
                                    verbose=False)
    proto = program.model_proto
    proto.doc_string = f"digitlab {info['env'].get('digitlab')} model from {source}, epoch {info.get('epoch')}"
    onnx.checker.check_model(proto, full_check=True)
    with atomic_write(out) as f:
        f.write(proto.SerializeToString())
    result = {"out": str(out), "bytes": out.stat().st_size}
    if verify:
        result.update(verify_onnx(out, model, config))
    return result


def verify_onnx(path: Path, model: torch.nn.Module, config) -> dict:
    """Largest difference between ONNX Runtime and PyTorch probabilities over the run's test set (or random data)."""
    from .data import load_test
    try:
        test = load_test(config.data)
        images, label = test.images, f"{len(test):,} {config.data.source} test images"
    except DigitlabError:
        test = None
    if test is None:
        images = torch.randint(0, 256, (1000, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        label = "1,000 random images"
    onnx_probs = OnnxEngine(path).predict_proba(images)
    torch_probs = torch.softmax(predict_logits(model, images), 1).numpy()
    return {"max_abs_diff": float(np.abs(onnx_probs - torch_probs).max()), "compared_on": label,
            "same_predictions": float((onnx_probs.argmax(1) == torch_probs.argmax(1)).mean())}


class TorchEngine:
    name = "torch"

    def __init__(self, checkpoint: Path, device: str = "cpu"):
        from .evaluate import resolve_device
        self.model, self.config, self.info, _ = load_checkpoint(checkpoint, resolve_device(device))
        self.identity = {"engine": self.name, "file": str(checkpoint), "epoch": self.info.get("epoch"),
                         "git_commit": self.info["env"].get("git_commit")}

    def predict_proba(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        images = torch.as_tensor(images)
        return torch.softmax(predict_logits(self.model, images, batch_size=CHUNK), 1).numpy()


class OnnxEngine:
    name = "onnx"

    def __init__(self, path: Path):
        import onnxruntime
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable models
            raise DataError(path, None, f"not a loadable ONNX model ({str(e)[:150]})") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].shape[1:] != [1, 28, 28]:
            raise DataError(path, None, "ONNX model does not take (N, 1, 28, 28) pixels")
        self.input_name = inputs[0].name
        self.identity = {"engine": self.name, "file": str(path),
                         "doc": self.session.get_modelmeta().description or None}

    def predict_proba(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        pixels = np.asarray(images, dtype=np.float32)
        if len(pixels) == 0:
            return np.zeros((0, 10), dtype=np.float32)
        chunks = [self.session.run(None, {self.input_name: pixels[i: i + CHUNK]})[0]
                  for i in range(0, len(pixels), CHUNK)]
        return np.concatenate(chunks)


def load_engine(target: str | Path, engine: str = "auto", device: str = "cpu"):
    """An engine for a run folder, an ensemble folder, a checkpoint or an .onnx file. 'auto': ONNX Runtime when
    installed."""
    target = Path(target)
    from .ensemble import EnsembleEngine, is_ensemble
    if is_ensemble(target):
        return EnsembleEngine(target, engine, device)
    if target.suffix == ".onnx":
        if engine == "torch":
            raise DigitlabError(f"{target} is an ONNX file: it runs with --engine onnx only")
        if not onnxruntime_available():
            raise DigitlabError("running an .onnx model needs onnxruntime: pip install 'digitlab[export]'")
        if not target.is_file():
            raise DigitlabError(f"{target}: no such ONNX file")
        return OnnxEngine(target)
    checkpoint = model_path(target)
    use_onnx = engine == "onnx" or (engine == "auto" and device in ("cpu", "auto") and onnxruntime_available())
    if engine == "onnx" and not onnxruntime_available():
        raise DigitlabError("--engine onnx needs onnxruntime: pip install 'digitlab[export]'")
    if not use_onnx:
        return TorchEngine(checkpoint, device)
    onnx_path = checkpoint.with_suffix(".onnx")
    if not onnx_path.is_file() or onnx_path.stat().st_mtime < checkpoint.stat().st_mtime:
        try:
            export_onnx(checkpoint, onnx_path, verify=False)
        except DigitlabError:
            if engine == "onnx":
                raise
            return TorchEngine(checkpoint, device)  # 'auto' on a read-only run folder or without onnx: PyTorch
    return OnnxEngine(onnx_path)
