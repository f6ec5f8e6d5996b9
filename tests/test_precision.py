"""--precision auto: bf16 autocast where a timed probe finds it >= 1.25x as fast, the answer cached, and a resumed
run computing in the precision it began with."""

from __future__ import annotations

import dataclasses
import json

import torch

from digitlab import precision
from digitlab.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from digitlab.distributed import Processes
from digitlab.models import build_model
from digitlab.precision import BF16_MARGIN, CACHE_NAME, cache_key, choose_autocast, cpu_flags
from digitlab.state import run_precision

CPU = torch.device("cpu")


def tiny(tmp_path, precision_name: str = "auto") -> RunConfig:
    """A small model whose probe takes milliseconds; the cache in tmp_path."""
    return RunConfig(
        data=DataConfig(data_dir=str(tmp_path)),
        model=ModelConfig(arch="compact", width=4, dropout=0.0),
        train=TrainConfig(batch_size=8, precision=precision_name),
    )


def test_asked_precisions_and_cuda_are_taken_without_a_probe(tmp_path):
    model = build_model(tiny(tmp_path).model)
    assert choose_autocast(tiny(tmp_path, "fp32"), model, CPU) == (None, "fp32, as asked")
    assert choose_autocast(tiny(tmp_path, "bf16"), model, CPU) == (torch.bfloat16, "bf16, as asked")
    assert choose_autocast(tiny(tmp_path), model, torch.device("cuda")) == (torch.bfloat16, "auto: bf16 on CUDA")
    assert not (tmp_path / CACHE_NAME).exists()


def test_bf16_instructions_are_read_from_the_first_cpus_flags():
    # /proc/cpuinfo as three CPUs measured here print it (flags shortened): AMX Xeon, Zen 4 EPYC, AVX2 EPYC
    amx = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    zen4 = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n"
    avx2 = "processor\t: 0\nflags\t\t: fpu sse avx2 fma avx512f\nbugs\t\t: amx_bf16\n"  # a flag name elsewhere
    bf16 = {"avx512_bf16", "amx_bf16"}
    assert cpu_flags(amx) & bf16 == bf16 and cpu_flags(zen4) & bf16 == {"avx512_bf16"}
    assert not cpu_flags(avx2) & bf16 and not cpu_flags("")


def test_a_cpu_without_bf16_instructions_trains_in_fp32_without_a_probe(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "this_cpu", lambda: ("an AVX2 CPU", False))
    model = build_model(tiny(tmp_path).model)
    assert choose_autocast(tiny(tmp_path), model, CPU) == (None, "auto: fp32 (no bf16 instructions on this CPU)")
    assert not (tmp_path / CACHE_NAME).exists()


def test_the_probe_leaves_the_run_alone_decides_by_its_margin_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "this_cpu", lambda: ("a CPU with bf16 instructions", True))
    config = tiny(tmp_path)
    torch.manual_seed(3)
    model = build_model(config.model)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    dtype, why = choose_autocast(config, model, CPU)
    assert "measured now" in why
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())  # the probe trained a copy
    assert torch.equal(torch.get_rng_state(), rng)  # and drew nothing from the run's random stream
    path = tmp_path / CACHE_NAME
    key = cache_key(config, CPU)
    measured = json.loads(path.read_text())[key]["bf16_speedup"]
    assert measured > 0 and (dtype is torch.bfloat16) == (measured >= BF16_MARGIN)
    for speedup, expected in ((2.0, torch.bfloat16), (1.1, None), (BF16_MARGIN, torch.bfloat16)):
        path.write_text(json.dumps({key: {"bf16_speedup": speedup}}))  # what another run measured
        dtype, why = choose_autocast(config, model, CPU)
        assert dtype is expected and "cached" in why and f"{speedup:.2f}x" in why, why
    # the answer belongs to one model, batch size and thread count
    wider = dataclasses.replace(config, model=dataclasses.replace(config.model, width=8))
    larger_batch = dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=16))
    assert len({key, cache_key(wider, CPU), cache_key(larger_batch, CPU)}) == 3


def test_a_damaged_cache_is_measured_again_and_rewritten(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "this_cpu", lambda: ("a CPU with bf16 instructions", True))
    config = tiny(tmp_path)
    model = build_model(config.model)
    key = cache_key(config, CPU)
    for text in ("{not json", "[1, 2]", json.dumps({key: {"bf16_speedup": "fast"}}), json.dumps({key: 3})):
        (tmp_path / CACHE_NAME).write_text(text)
        _, why = choose_autocast(config, model, CPU)
        assert "measured now" in why, text
        assert isinstance(json.loads((tmp_path / CACHE_NAME).read_text())[key]["bf16_speedup"], float)


def test_a_resumed_run_computes_in_the_precision_it_began_with(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "this_cpu", lambda: ("an AVX2 CPU", False))  # where auto would say fp32
    config = tiny(tmp_path)
    model = build_model(config.model)
    single = Processes()
    assert run_precision(config, model, CPU, single, {"autocast": "bf16"}) == (torch.bfloat16, "bf16, as the run began")
    assert run_precision(config, model, CPU, single, {"autocast": None}) == (None, "fp32, as the run began")
    # a checkpoint from before the choice was recorded, and a fresh run: chosen now
    expected = (None, "auto: fp32 (no bf16 instructions on this CPU)")
    assert run_precision(config, model, CPU, single, {}) == expected
    assert run_precision(config, model, CPU, single, None) == expected
