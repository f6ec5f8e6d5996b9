"""Export a run's model to ONNX: BatchNorm folded, checked by the onnx checker, verified against PyTorch.

The exported graph takes raw pixels — float32 (N, 1, 28, 28), values 0..255 — with a dynamic batch dimension, and
returns `probabilities` (N, 10): the normalisation and the softmax are inside it, so callers do no preprocessing.
Before export, BatchNorm layers and the input normalisation are folded into the following convolution or linear
layer (`fold_batchnorm`: exact algebra, 5-10 % faster in ONNX Runtime), and a BatchNorm after max-pooling back into
the convolution before it (`fold_pooled_batchnorm`: the compact CNN 1.07x faster at batch 64, 2026-12-04).
`export_onnx` checks the file with the onnx checker and compares its outputs with the unfolded PyTorch model's on
the run's test set.

`int8=True` (`digitlab export --int8`, written to RUN_DIR/model.int8.onnx) adds ONNX Runtime's static int8
quantisation: QDQ, per-channel int8 weights, uint8 activations with ranges (the 99.999th percentile) calibrated on
the first 1,000 of the run's own training images. It pays only on CPUs with int8 dot-product instructions: on an
Intel Xeon with AVX512-VNNI and AMX it ran the reference CNN 1.7x and the width-48 stacked CNN 2.6x faster than fp32
at batch 64 (docs/results-2026-12-04d), while on an AVX2 CPU without VNNI it was 10-15 % *slower*; the small compact
CNN ran 0.28x there (its quantise/dequantise steps outweigh its little arithmetic). The stacked CNNs kept their
test accuracy to the digit, the reference CNN lost 0.05 points: verification reports both test accuracies.

Every exported file records the SHA-256 of the checkpoint it came from in its metadata (`exported_from` reads it):
the engines reuse a run's model.onnx only beside that very model.safetensors. `onnx_session` and `run_onnx` open and
run an exported file in ONNX Runtime; engines.py builds its ONNX engine on them.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .data import load_test, load_train_val
from .errors import DataError, DigitlabError
from .evaluate import predict_logits
from .files import atomic_write
from .models import Normalize
from .runs import ONNX, ONNX_INT8, check_output, model_path, model_sha256

MODEL_SHA256_KEY = "digitlab.model_sha256"  # ONNX metadata: the SHA-256 of the checkpoint the graph was exported from


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
    padded convolutions keep their BatchNorm. BatchNorms after max-pooling (the compact model's) fold back into the
    convolution before the pooling instead, when `fold_pooled_batchnorm` can."""
    layers = fold_pooled_batchnorm([copy.deepcopy(m) for m in leaf_layers(model.eval())])
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
            bias = (
                layer.bias
                if layer.bias is not None
                else torch.zeros(layer.out_channels if conv else layer.out_features)
            )
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


def fold_pooled_batchnorm(layers: list[torch.nn.Module]) -> list[torch.nn.Module]:
    """Conv -> MaxPool -> BatchNorm [-> ReLU], the compact model's order, becomes Conv (BatchNorm folded in) [-> ReLU]
    -> MaxPool when every one of the BatchNorm's scales is positive: an increasing map per channel commutes with
    taking a maximum, and so does ReLU. Exact; ONNX Runtime then runs the convolution and ReLU as one fused node and
    the BatchNorm's pass disappears (it could not fuse a BatchNorm that follows a pooling). A BatchNorm with a
    negative or zero scale stays where it was (it would turn the maximum into a minimum)."""
    out, i = [], 0
    while i < len(layers):
        conv, pool, norm, *rest = layers[i : i + 4] + [None] * 3
        pattern = isinstance(conv, torch.nn.Conv2d) and isinstance(pool, torch.nn.MaxPool2d)
        affine = affine_of(norm) if pattern and isinstance(norm, torch.nn.BatchNorm2d) else None
        if affine is not None and bool((affine[0] > 0).all()):
            scale, shift = affine
            bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
            conv.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
            conv.bias = torch.nn.Parameter(bias * scale + shift)
            relu = rest[0] if isinstance(rest[0], torch.nn.ReLU) else None
            out += [conv, relu, pool] if relu else [conv, pool]
            i += 4 if relu else 3
        else:
            out.append(layers[i])
            i += 1
    return out


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


def export_onnx(
    run: str | Path, out: str | Path | None = None, verify: bool = True, force: bool = False, int8: bool = False
) -> dict:
    """Write the run's model as ONNX (default RUN_DIR/model.onnx, or model.int8.onnx with `int8`: derived files that
    may be replaced); returns the path and the verification figures. An explicit `out` follows runs.check_output."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise DigitlabError("ONNX export needs the export extra: pip install 'digitlab[export]'") from None
    source = model_path(run)
    own = ONNX_INT8 if int8 else ONNX
    out = check_output(out, (run, source), force, owned_name=own) if out else source.with_name(own)
    proto, model, config = onnx_graph(source)
    if int8:
        proto = quantize_int8(proto, config)
    with atomic_write(out) as f:
        f.write(proto)
    result = {"out": str(out), "bytes": out.stat().st_size, "int8": int8}
    if verify:
        result.update(verify_onnx(out, model, config))
    return result


def onnx_graph(source: Path) -> tuple[bytes, torch.nn.Module, object]:
    """(the serialized ONNX graph, the unfolded PyTorch model, its config) for a checkpoint file."""
    import onnx

    model, config, info, _ = load_checkpoint(source)
    graph = WithSoftmax(fold_batchnorm(model.to(memory_format=torch.contiguous_format))).eval()
    example = torch.zeros(2, 1, 28, 28)
    # The exporter prints progress, logs about optional torchvision ops and warns about internals: keep it quiet.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), quiet_logger("torch.onnx"):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            graph,
            (example,),
            input_names=["pixels"],
            output_names=["probabilities"],
            dynamic_shapes={"pixels": {0: torch.export.Dim("batch")}},
            dynamo=True,
            verbose=False,
        )
    proto = program.model_proto
    proto.doc_string = f"digitlab {info['env'].get('digitlab')} model from {source.name}, epoch {info.get('epoch')}"
    # which checkpoint this graph is: the engines reuse a run's model.onnx only beside that very model.safetensors
    proto.metadata_props.add(key=MODEL_SHA256_KEY, value=model_sha256(source))
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString(), model, config


class CalibrationImages:
    """onnxruntime.quantization's CalibrationDataReader protocol: the calibration images, 100 at a time."""

    def __init__(self, images: np.ndarray):
        self.batches = iter(images[i : i + 100] for i in range(0, len(images), 100))

    def get_next(self) -> dict | None:
        batch = next(self.batches, None)
        return None if batch is None else {"pixels": batch}


def quantize_int8(proto: bytes, config, calibration_size: int = 1000) -> bytes:
    """The exported graph with int8 convolutions and matrix products (static QDQ quantisation, per-channel
    weights), activation ranges calibrated on the first `calibration_size` of the run's training images."""
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    except ImportError:
        raise DigitlabError("int8 export needs onnxruntime: pip install 'digitlab[export]'") from None
    try:
        train, _ = load_train_val(config.data, config.train.seed)
    except DigitlabError as e:
        raise DigitlabError(f"int8 export calibrates on the run's training images, which cannot be read: {e}") from None
    images = train.images[:calibration_size].numpy().astype(np.float32)
    # it logs advice on pre-processing and prints its histogram steps: keep both quiet
    with tempfile.TemporaryDirectory() as tmp, quiet_logger(""), contextlib.redirect_stdout(io.StringIO()):
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        fp32.write_bytes(proto)
        # percentile ranges (99.999 %, clipping the rarest activations) were chosen over min-max, entropy and fp32
        # linear layers on the reference CNN's validation split: 99.54 % against 99.52 % (fp32 99.60 %), at 1.62x
        # fp32's images/s (docs/results-2026-12-04d/int8_calibration_probe.txt)
        quantize_static(str(fp32), str(int8), CalibrationImages(images), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.Percentile)  # fmt: skip
        return int8.read_bytes()


def verify_onnx(path: Path, model: torch.nn.Module, config) -> dict:
    """Largest difference between ONNX Runtime and PyTorch probabilities over the run's test set (or random data)."""
    try:
        test = load_test(config.data)
        images, label = test.images, f"{len(test):,} {config.data.source} test images"
    except DigitlabError:
        test = None
    if test is None:
        images = torch.randint(0, 256, (1000, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        label = "1,000 random images"
    onnx_probs = run_onnx(onnx_session(path), images.numpy().astype(np.float32))
    torch_probs = torch.softmax(predict_logits(model, images), 1).numpy()
    result = {
        "max_abs_diff": float(np.abs(onnx_probs - torch_probs).max()),
        "compared_on": label,
        "same_predictions": float((onnx_probs.argmax(1) == torch_probs.argmax(1)).mean()),
    }
    if test is not None and test.labels is not None:
        labels = test.labels.numpy()
        result["onnx_accuracy"] = float((onnx_probs.argmax(1) == labels).mean())
        result["torch_accuracy"] = float((torch_probs.argmax(1) == labels).mean())
    return result


def onnx_session(path: Path):
    """An ONNX Runtime session for a model that takes (N, 1, 28, 28) pixels; anything else is one clear error."""
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for unreadable models
        raise DataError(path, None, f"not a loadable ONNX model ({str(e)[:150]})") from None
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].shape[1:] != [1, 28, 28]:
        raise DataError(path, None, "ONNX model does not take (N, 1, 28, 28) pixels")
    return session


def exported_from(session) -> str | None:
    """The SHA-256 of the checkpoint an ONNX session's model was exported from, as export recorded it (None for a
    file exported before digitlab recorded it, or by something else)."""
    return session.get_modelmeta().custom_metadata_map.get(MODEL_SHA256_KEY)


def run_onnx(session, pixels: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Probabilities for float32 pixels (N, 1, 28, 28), `chunk` images per call."""
    if len(pixels) == 0:
        return np.zeros((0, session.get_outputs()[0].shape[1]), dtype=np.float32)
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: pixels[i : i + chunk]})[0] for i in range(0, len(pixels), chunk)])
