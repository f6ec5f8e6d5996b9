"""Configs round-trip through JSON with validation; checkpoints round-trip through safetensors, no pickle."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle

import pytest
import torch
from conftest import REPO

from digitlab.checkpoint import FORMAT, load_checkpoint, read_checkpoint, save_checkpoint
from digitlab.cli import main
from digitlab.config import RECIPE_NAMES, AugmentConfig, RunConfig, TrainConfig, from_dict, override, recipe, to_dict
from digitlab.errors import DataError, DigitlabError
from digitlab.models import build_model


def test_config_round_trip_and_validation():
    config = override(
        RunConfig(),
        {
            "train.epochs": 3,
            "model.batch_norm": False,
            "data.train_size": 1000,
            "augment.enabled": False,
            "train.threads": None,
        },
    )
    assert from_dict(RunConfig, to_dict(config)) == config
    assert config.train.epochs == 3 and not config.model.batch_norm and config.train.threads is None
    with pytest.raises(DigitlabError, match="unknown field"):
        from_dict(RunConfig, {"train": {"epochz": 3}})
    with pytest.raises(DigitlabError, match="train.epochs"):
        from_dict(RunConfig, {"train": {"epochs": "3"}})
    with pytest.raises(DigitlabError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(DigitlabError):
        AugmentConfig(shear_rad=2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.epochs = 5  # type: ignore[misc]


def test_the_fashion_recipe_is_the_configuration_that_was_measured():
    # README's Fashion-MNIST figures come from this run folder's config (docs/results-2026-12-01b)
    measured = json.loads((REPO / "docs/results-2026-12-01b/fashion_vgg32_e23_config.json").read_text())
    assert from_dict(RunConfig, measured["config"]) == recipe("fashion")


def test_the_robust_recipe_is_the_configuration_that_was_measured():
    # README's figures for the robust recipe (Beyond MNIST's test set): seed 0 of the three runs that chose it
    measured = json.loads((REPO / "docs/results-2026-12-01d/robust_vgg32_e20_config.json").read_text())
    assert from_dict(RunConfig, measured["config"]) == recipe("robust")


def test_recipes_are_valid_named_configs():
    assert recipe("reference") == RunConfig()
    for name in RECIPE_NAMES:
        config = recipe(name)
        assert config.recipe == name and from_dict(RunConfig, to_dict(config)) == config
    fast = recipe("fast")
    assert fast.model.arch == "compact" and fast.augment.enabled and fast.augment.shear_rad == 0
    assert override(fast, {"train.epochs": 9}).recipe == "fast"  # flags change fields, the name stays
    student = recipe("student")  # distill's default: the fast recipe's model with a strided stem, trained longer
    assert student.model == dataclasses.replace(fast.model, stem="stride") and student.augment == fast.augment
    assert student.train == dataclasses.replace(fast.train, epochs=96)
    assert override(student, {"model.arch": "vgg"}).model.arch == "vgg"  # `distill --arch vgg`: a stacked student
    with pytest.raises(DigitlabError, match="recipe 'turbo'"):
        recipe("turbo")
    with pytest.raises(DigitlabError, match="recipe"):
        from_dict(RunConfig, {"recipe": "turbo"})
    # configs written before recipes existed still load, as the reference recipe
    old = to_dict(RunConfig())
    del old["recipe"], old["model"]["width"]
    assert from_dict(RunConfig, old) == RunConfig()


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model(RunConfig().model)
    model.normalize.mean.fill_(12.5)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.rand(2, 1, 28, 28)).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "c.safetensors", model, RunConfig(), {"epoch": 3}, optimizer=optimizer)
    loaded, config, info, tensors = load_checkpoint(tmp_path / "c.safetensors")
    assert config == RunConfig() and info["epoch"] == 3 and info["env"]["torch"] == torch.__version__
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert any(k.startswith("optim.") for k in tensors)


def test_checkpoint_metadata_is_strict_json_and_nan_comes_back(tmp_path):
    """A run without a validation split records NaN validation figures: null in the file, NaN when read."""
    record = {"epoch": 1, "val_accuracy": float("nan"), "val_loss": float("inf"), "train_loss": 0.5,
              "train_accuracy": 0.9}  # fmt: skip
    save_checkpoint(tmp_path / "c.safetensors", build_model(RunConfig().model), RunConfig(), {"history": [record]})
    blob = (tmp_path / "c.safetensors").read_bytes()
    header = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])
    strict = json.loads(header["__metadata__"]["digitlab"], parse_constant=pytest.fail)  # NaN/Infinity: refused
    assert strict["history"][0]["val_accuracy"] is None and strict["history"][0]["val_loss"] is None
    (read,) = read_checkpoint(tmp_path / "c.safetensors")[1]["history"]
    assert math.isnan(read["val_accuracy"]) and math.isnan(read["val_loss"]) and read["train_loss"] == 0.5


def test_pickle_and_mismatched_checkpoints_are_refused(tmp_path):
    evil = tmp_path / "model.safetensors"
    evil.write_bytes(pickle.dumps({"boom": 1}))
    with pytest.raises(DataError, match="not a digitlab safetensors"):
        read_checkpoint(evil)
    # a checkpoint of a model with batch norm, relabelled as one without: the tensors no longer fit
    model = build_model(RunConfig().model)
    bad_config = override(RunConfig(), {"model.batch_norm": False})
    save_checkpoint(tmp_path / "m.safetensors", model, bad_config)
    with pytest.raises(DataError, match="do not match"):
        load_checkpoint(tmp_path / "m.safetensors")


def test_failed_save_keeps_the_previous_checkpoint(tmp_path):
    model = build_model(RunConfig().model)
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model, RunConfig())
    before = path.read_bytes()

    class Broken(torch.nn.Module):
        def state_dict(self, *a, **k):
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        save_checkpoint(path, Broken(), RunConfig())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"train.lr": float("inf")}, "learning rate inf"),
        ({"train.lr": float("nan")}, "learning rate nan"),
        ({"model.num_classes": 10**9}, "10 classes"),
        ({"train.epochs": 10**9}, "epochs"),
        ({"train.batch_size": 10**9}, "batch size"),
        ({"train.seed": -1}, "seed -1"),
        ({"train.weight_decay": float("inf")}, "weight decay"),
        ({"augment.rotation_deg": float("nan")}, "finite"),
    ],
)
def test_config_bounds(changes, words):
    with pytest.raises(DigitlabError, match=words):
        override(RunConfig(), changes)


def crafted_checkpoint(path, info: dict, tensors: dict | None = None):
    """A safetensors file with the given digitlab metadata (the model's tensors unless `tensors`)."""
    from safetensors.torch import save_file

    model = build_model(RunConfig().model)
    tensors = tensors if tensors is not None else {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"digitlab": json.dumps(info)})
    return path


CRAFTED = {
    "config-is-a-string": {"format": FORMAT, "config": "[1]"},
    "config-missing": {"format": FORMAT},
    "env-is-a-list": {"format": FORMAT, "config": to_dict(RunConfig()), "env": [1]},
    "odd-optimizer": {"format": FORMAT, "config": {**to_dict(RunConfig()), "train": {"optimizer": "lion"}}},
    "huge-classes": {"format": FORMAT, "config": {**to_dict(RunConfig()), "model": {"num_classes": 10**9}}},
    "history-of-strings": {"format": FORMAT, "config": to_dict(RunConfig()), "history": ["x"]},
    "metadata-is-a-list": [1, 2],
}


@pytest.mark.parametrize("name", CRAFTED)
def test_crafted_checkpoint_metadata_is_one_clear_error(name, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    crafted_checkpoint(run / "model.safetensors", CRAFTED[name])
    crafted_checkpoint(run / "last.safetensors", CRAFTED[name])
    for argv in (["evaluate", str(run), "--engine", "torch"], ["train", "--resume", str(run)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("digitlab: error: ") and "safetensors" in err[0], err


def test_resume_with_a_broken_optimizer_state_is_one_clear_error(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    info = {"format": FORMAT, "config": to_dict(RunConfig()), "epoch": 1, "history": [],
            "optimizer_param_groups": [{"nonsense": 1}]}  # fmt: skip
    crafted_checkpoint(run / "last.safetensors", info)
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "optimizer state" in err and "Traceback" not in err


def test_gpu_recipe_is_best_at_gpu_batch_sizes_compiled_with_bf16_on_cuda():
    from digitlab.models import build_model
    from digitlab.precision import choose_autocast

    gpu, best = recipe("gpu"), recipe("best")
    assert gpu.model == best.model and gpu.augment == best.augment and gpu.data == best.data
    assert gpu.train.batch_size == 4 * best.train.batch_size and gpu.train.lr == 2 * best.train.lr
    autocast, _ = choose_autocast(gpu, build_model(gpu.model), torch.device("cuda"))
    assert gpu.train.compile and autocast is torch.bfloat16


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd"])
def test_fused_optimizers_make_the_for_loops_update_and_old_states_resume_as_saved(tmp_path, kind):
    """build_optimizer uses PyTorch's fused kernels on the CPU: after 30 steps the weights match the default
    for-loop optimizer's to float rounding. A checkpoint saved by a for-loop optimizer (runs from before the fused
    kernels) resumes with the for-loop, so its remaining epochs are computed as they would have been."""
    from digitlab.checkpoint import restore_optimizer
    from digitlab.state import build_optimizer

    train = TrainConfig(optimizer=kind, lr=1e-2, weight_decay=0.01)
    weights = []
    for fused in (True, False):
        torch.manual_seed(0)
        model = build_model(RunConfig().model)
        optimizer = build_optimizer(model, train)
        assert all(group["fused"] for group in optimizer.param_groups)
        for group in optimizer.param_groups:
            group["fused"] = True if fused else None  # None: the for-loop, as build_optimizer made it before
        gradients = torch.Generator().manual_seed(1)
        for _ in range(30):
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=gradients) * 1e-2
            optimizer.step()
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert not torch.equal(*weights) or kind == "sgd"  # two kernels: rounding differs (SGD's happens to agree)
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=1e-6)

    save_checkpoint(tmp_path / "old.safetensors", model, RunConfig(), {"epoch": 1}, optimizer=optimizer)
    _, _, info, tensors = load_checkpoint(tmp_path / "old.safetensors")
    resumed = build_optimizer(model, train)
    restore_optimizer(resumed, tensors, info)
    assert all(group["fused"] is None for group in resumed.param_groups)


def test_a_fused_optimizer_restored_into_a_channels_last_model_continues_exactly(tmp_path):
    """Training lays the model out channels-last; the checkpoint holds the optimizer's moments contiguous. PyTorch's
    fused Adam reads every tensor in its weight's memory order, so restored moments of the other layout would pair
    the wrong numbers (weights off by 0.17 after one step in a probe): restore_optimizer lays them out alike."""
    from digitlab.checkpoint import restore_optimizer
    from digitlab.state import build_optimizer

    def step(model, optimizer):
        images = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 255
        torch.manual_seed(3)  # the same dropout masks for both models
        optimizer.zero_grad()
        model(images.contiguous(memory_format=torch.channels_last)).logsumexp(1).mean().backward()
        optimizer.step()

    torch.manual_seed(0)
    model = build_model(RunConfig().model).to(memory_format=torch.channels_last).train()
    optimizer = build_optimizer(model, TrainConfig(lr=1e-2))
    for _ in range(3):
        step(model, optimizer)
    save_checkpoint(tmp_path / "last.safetensors", model, RunConfig(), {"epoch": 1}, optimizer=optimizer)
    resumed, _, info, tensors = load_checkpoint(tmp_path / "last.safetensors")
    resumed.train()
    resumed_optimizer = build_optimizer(resumed, TrainConfig(lr=1e-2))
    restore_optimizer(resumed_optimizer, tensors, info)
    step(model, optimizer)
    step(resumed, resumed_optimizer)
    for (name, a), b in zip(model.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), name
