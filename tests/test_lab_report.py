"""The overfitting lab end to end on 1,000 images and the HTML reports, checked in a real browser."""

from __future__ import annotations

import csv
import json
import math
import shutil

import pytest
import torch
from browser import check_report_in_browser
from conftest import run_cli

from digitlab.checkpoint import load_checkpoint
from digitlab.config import RunConfig, recipe
from digitlab.errors import DigitlabError
from digitlab.fonts import find_fonts
from digitlab.lab import LabConfig, noise_notes, strategy_config, switches

STRATEGIES = ["none", "dropout", "bn", "augment", "all"]


LAB = ["--train-size", "600", "--epochs", "3", "--batch-size", "64", "--val-size", "300"]


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("lab") / "lab"
    r = run_cli("lab", *LAB, "--out", str(out), "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    assert "| configuration |" in r.stdout
    return out


@pytest.mark.slow
def test_lab_table_structure(lab_dir):
    rows = list(csv.DictReader((lab_dir / "table.csv").open()))
    assert [r["configuration"] for r in rows] == STRATEGIES
    assert all(r["train_images"] == "600" and r["repeats"] == "1" for r in rows)
    for r in rows:
        for key in (
            "train_acc_final",
            "train_acc_best",
            "val_acc",
            "test_acc",
            "gap_acc",
            "gap_loss",
            "best_val_loss_epoch",
            "seconds",
        ):
            assert r[f"{key}_mean"] not in ("", "nan"), key
        assert 0.5 < float(r["test_acc_mean"]) <= 1.0
        assert float(r["train_acc_best_mean"]) >= float(r["train_acc_final_mean"])
    md = (lab_dir / "table.md").read_text().splitlines()
    assert len(md) == 2 + len(STRATEGIES) and md[0].startswith("| configuration | train images |")
    for name in ("curves.png", "gap.png", "report.html", "lab.json"):
        assert (lab_dir / name).is_file(), name


@pytest.mark.slow
def test_lab_runs_differ_only_in_the_switches(lab_dir):
    configs = {}
    for name in STRATEGIES:
        _, config, _, _ = load_checkpoint(lab_dir / "runs" / f"{name}__n600__s0" / "model.safetensors")
        configs[name] = config
    expected = {
        "none": (0.0, False, False),
        "dropout": (0.5, False, False),
        "bn": (0.0, True, False),
        "augment": (0.0, False, True),
        "all": (0.5, True, True),
    }
    for name, config in configs.items():
        assert (config.model.dropout, config.model.batch_norm, config.augment.enabled) == expected[name]
        neutral = strategy_config(config, "none", config.data.train_size, config.train.seed)
        assert neutral == strategy_config(configs["none"], "none", 600, 0)


@pytest.mark.slow
def test_lab_rerun_reuses_finished_runs(lab_dir, data_dir):
    before = (lab_dir / "runs" / "bn__n600__s0" / "model.safetensors").stat().st_mtime_ns
    r = run_cli("lab", *LAB, "--out", str(lab_dir), "--strategies", "bn,none", "--data-dir", str(data_dir))
    assert r.returncode == 0 and r.stdout.count("reusing") == 2
    assert (lab_dir / "runs" / "bn__n600__s0" / "model.safetensors").stat().st_mtime_ns == before


@pytest.mark.slow
def test_lab_report_opens_in_chromium(lab_dir):
    result = check_report_in_browser(lab_dir / "report.html", ["setup", "table", "curves", "gap"])
    assert result["images"] == 2


@pytest.mark.slow
def test_run_report_opens_in_chromium(lab_dir):
    run = lab_dir / "runs" / "all__n600__s0"
    r = run_cli("report", str(run))
    assert r.returncode == 0, r.stderr
    sections = ["summary", "model", "config", "curves", "confusion", "per-class", "wrong", "saliency", "augmentation"]
    result = check_report_in_browser(run / "report.html", sections)
    assert result["images"] == 6  # the saliency grid (Captum is in the dev extra) included
    text = (run / "report.html").read_text()
    assert "Total params: 601,578" in text and "Most confidently wrong" in text


def test_strategy_parsing_and_noise_notes():
    assert switches("dropout+bn") == ("dropout", "bn") and switches("all") == ("dropout", "bn", "augment")
    for bad in ("dropuot", "bn+bn", ""):
        with pytest.raises(DigitlabError):
            switches(bad)
    with pytest.raises(DigitlabError):
        LabConfig(strategies=("none", "none"))
    base = RunConfig()
    assert strategy_config(base, "none", 1000, 3).train.seed == 3
    assert switches("all+robust") == ("dropout", "bn", "augment", "robust")
    with pytest.raises(DigitlabError):
        switches("all+bn")
    robust = strategy_config(base, "bn+robust", None, 0).augment
    assert robust.enabled and robust == recipe("robust").augment  # the robust recipe's whole policy
    assert strategy_config(strategy_config(base, "bn+robust", None, 0), "augment", None, 0).augment == base.augment
    runs = lambda values: [{"test_acc": v} for v in values]  # noqa: E731
    rows = [
        {"strategy": "a", "size": 1, "size_label": "1", "runs": runs([0.90, 0.91, 0.92])},
        {"strategy": "b", "size": 1, "size_label": "1", "runs": runs([0.905, 0.915, 0.925])},
        {"strategy": "c", "size": 1, "size_label": "1", "runs": runs([0.97, 0.971, 0.972])},
    ]
    notes = noise_notes(rows)
    assert len(notes) == 1 and notes[0].startswith("a vs b")
    assert "differs by -0.50 points, within noise" in notes[0]  # means 0.910 vs 0.915
    for row in rows:
        row["runs"] = [{"val_corrupted_acc": r["test_acc"]} for r in row["runs"]]
    note = noise_notes(rows, "val_corrupted_acc")[0]
    assert "a vs b (n=1): mean corrupted validation accuracy differs by -0.50" in note


@pytest.mark.slow
def test_lab_rerun_with_a_changed_flag_refuses_and_deletes_nothing(lab_dir, data_dir):
    before = {p: p.read_bytes() for p in (lab_dir / "runs").glob("*/model.safetensors")}
    changed = [*LAB[:2], "--epochs", "4", *LAB[4:]]
    r = run_cli("lab", *changed, "--out", str(lab_dir), "--data-dir", str(data_dir))
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "train.epochs: 3 -> 4" in r.stderr and "--force" in r.stderr and "--out" in r.stderr
    assert {p: p.read_bytes() for p in (lab_dir / "runs").glob("*/model.safetensors")} == before


@pytest.mark.slow
def test_lab_with_a_corrupt_run_config_is_one_clear_line(lab_dir, tmp_path, data_dir):
    copy = tmp_path / "lab"
    shutil.copytree(lab_dir, copy)
    (copy / "runs" / "none__n600__s0" / "config.json").write_text('{"config": [1')
    r = run_cli("lab", *LAB, "--out", str(copy), "--data-dir", str(data_dir))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "none__n600__s0/config.json" in r.stderr and "not a readable run config" in r.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_a_lab_on_a_device_the_machine_lacks_is_refused_before_any_folder(tmp_path, data_dir):
    r = run_cli("lab", *LAB, "--device", "cuda", "--out", str(tmp_path / "lab"), "--data-dir", str(data_dir))
    assert r.returncode == 2 and "--device cuda: no CUDA device" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "lab").exists()


@pytest.mark.slow
def test_lab_compares_augmentation_policies_on_the_robustness_suite(tmp_path, data_dir):
    out = tmp_path / "lab"
    args = ["lab", *LAB[:2], "--epochs", "2", *LAB[4:], "--strategies", "augment,augment+robust", "--robustness", "100"]
    r = run_cli(*args, "--out", str(out), "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    # by default on each run's own validation split: the lab's table is where policies are chosen
    assert r.stdout.count("robustness suite on 100 validation images") == 2
    rows = {row["configuration"]: row for row in csv.DictReader((out / "table.csv").open())}
    fonts_installed = bool(find_fonts())  # Debian's handwriting fonts (.ci/run installs them); else no font figure
    for row in rows.values():
        assert 0.1 < float(row["val_corrupted_acc_mean"]) <= 1 and "test_corrupted_acc_mean" not in row
        fonts = float(row["fonts_acc_mean"])
        assert 0 < fonts <= 1 if fonts_installed else math.isnan(fonts)
    assert "mean corrupted val acc %" in (out / "table.md").read_text()
    assert "100 validation images (its own split)" in (out / "report.html").read_text()
    for name, outline in (("augment", 0.0), ("augment+robust", recipe("robust").augment.outline)):
        run = out / "runs" / f"{name}__n600__s0"
        measured = json.loads((run / "robustness_val.json").read_text())
        assert (measured["images"], measured["split"]) == (100, "val") and not (run / "robustness.json").exists()
        assert load_checkpoint(run / "model.safetensors")[1].augment.outline == outline
    again = run_cli(*args, "--out", str(out), "--data-dir", str(data_dir))  # runs and their measurements reused
    assert again.returncode == 0 and again.stdout.count("reusing") == 2 and "robustness suite on" not in again.stdout
    tested = run_cli(*args, "--robustness-split", "test", "--out", str(out), "--data-dir", str(data_dir))
    assert tested.returncode == 0 and tested.stdout.count("robustness suite on 100 test images") == 2, tested.stderr
    assert "mean corrupted test acc %" in (out / "table.md").read_text()
