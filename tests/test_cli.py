"""The command line as a user runs it: exit codes, files written (or not), messages. Most tests run `cli.main` in
this process (conftest.run_cli); what a user sees only from a real process (one line and no traceback on bad input,
--debug's traceback) runs in one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TYPED_INSTALLED, run_cli, run_process, write_idx

from digitlab.cli import main
from digitlab.formats import read_idx_pair, write_kaggle_csv


@pytest.fixture(scope="module")
def test_images(mnist_dir):
    return read_idx_pair(mnist_dir / "t10k-images-idx3-ubyte", mnist_dir / "t10k-labels-idx1-ubyte")


def test_summary():
    r = run_cli("summary")
    assert r.returncode == 0 and "Total params: 601,578" in r.stdout and "Trainable params: 598,250" in r.stdout
    r = run_cli("summary", "--no-bn", "--dropout", "0")
    assert "Total params: 594,922" in r.stdout and "Dropout" not in r.stdout


def test_version_names_digitlab_torch_and_python():
    import sys

    import torch

    from digitlab import __version__

    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith(f"digitlab {__version__} (torch ")
    assert torch.__version__.split("+")[0] in r.stdout and sys.version.split()[0] in r.stdout


def test_evaluate_json_and_text(trained_run, data_dir):
    r = run_cli("evaluate", str(trained_run), "--json", "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["n"] == 10_000 and result["accuracy"] > 0.85
    assert len(result["per_class_accuracy"]) == 10
    assert np.array(result["confusion_matrix"]).sum() == 10_000
    assert np.trace(np.array(result["confusion_matrix"])) == 10_000 - result["errors"]
    text = run_cli("evaluate", str(trained_run))
    assert "confusion matrix" in text.stdout and f"{result['accuracy']:.2%}" in text.stdout


def test_evaluate_on_the_runs_own_validation_split(trained_run, data_dir, tmp_path):
    r = run_cli("evaluate", str(trained_run), "--split", "val", "--engine", "torch", "--json", "--data-dir",
                str(data_dir))  # fmt: skip
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert result["n"] == 500 and result["data"].endswith("(validation)")
    assert result["accuracy"] == pytest.approx(metrics["val_accuracy"], abs=1e-9)  # the split training chose on
    r = run_cli("evaluate", str(tmp_path / "nowhere"), "--split", "val")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_predict_writes_a_kaggle_submission_from_csv_idx_and_npz(trained_run, tmp_path, test_images):
    images, labels = test_images[0][:300], test_images[1][:300]
    write_kaggle_csv(tmp_path / "test.csv", images)
    write_idx(tmp_path / "test-idx", images)
    np.savez(tmp_path / "test.npz", images=images)
    submissions = []
    for name in ("test.csv", "test-idx", "test.npz"):
        out = tmp_path / f"sub-{name}.csv"
        r = run_cli("predict", str(trained_run), "--input", str(tmp_path / name), "--out", str(out))
        assert r.returncode == 0, r.stderr
        lines = out.read_text().splitlines()
        assert lines[0] == "ImageId,Label" and len(lines) == 301
        ids, predicted = zip(*(map(int, line.split(",")) for line in lines[1:]))
        assert list(ids) == list(range(1, 301)) and set(predicted) <= set(range(10))
        submissions.append(predicted)
    assert submissions[0] == submissions[1] == submissions[2]
    assert np.mean(np.array(submissions[0]) == labels) > 0.85


@pytest.mark.slow
def test_evaluate_measures_a_model_on_the_dataset_it_was_trained_on(tmp_path, data_dir):
    """A Fashion-MNIST run evaluated without --data is measured on clothing (it was measured on digits before,
    silently: 20 % on MNIST for a 67 % clothing model); --data still names another set."""
    from digitlab.datasets import fetch
    from digitlab.errors import DigitlabError

    try:
        fetch("fashion-mnist", data_dir, verbose=False)
    except DigitlabError:
        pytest.skip("Fashion-MNIST is not at hand (.ci/run installs Debian's dataset-fashion-mnist)")
    run = tmp_path / "clothing"
    r = run_cli("train", "--recipe", "fashion", "--arch", "compact", "--epochs", "1", "--train-size", "1000",
                "--val-size", "200", "--out", str(run), "--data-dir", str(data_dir))  # fmt: skip
    assert r.returncode == 0, r.stderr
    measured = json.loads(
        run_cli("evaluate", str(run), "--engine", "torch", "--json", "--data-dir", str(data_dir)).stdout
    )
    assert measured["data"] == "fashion-mnist/test" and measured["n"] == 10_000
    assert abs(measured["accuracy"] - json.loads((run / "metrics.json").read_text())["test"]["accuracy"]) <= 1e-4
    digits = json.loads(run_cli("evaluate", str(run), "--data", "mnist", "--json", "--data-dir", str(data_dir)).stdout)
    assert digits["data"] == "mnist/test"


def test_bad_input_one_message_exit_2_nothing_written(trained_run, tmp_path, test_images):
    bad = tmp_path / "bad.csv"
    write_kaggle_csv(bad, test_images[0][:5])
    lines = bad.read_text().splitlines()
    lines[3] = lines[3].replace(",0,", ",300,", 1)
    bad.write_text("\n".join(lines))
    out = tmp_path / "sub.csv"
    r = run_process("predict", str(trained_run), "--input", str(bad), "--out", str(out))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert str(bad) in r.stderr and "row 4" in r.stderr and "pixel 300" in r.stderr
    assert not out.exists()
    out.write_text("precious")
    assert run_cli("predict", str(trained_run), "--input", str(bad), "--out", str(out), "--force").returncode == 2
    assert out.read_text() == "precious"
    assert list(tmp_path.glob(".sub.csv*")) == []
    debug = run_process("--debug", "predict", str(trained_run), "--input", str(bad), "--out", str(out))
    assert "Traceback" in debug.stderr


def test_train_refuses_to_overwrite_a_run(trained_run):
    before = (trained_run / "model.safetensors").read_bytes()
    r = run_cli("train", "--epochs", "1", "--out", str(trained_run))
    assert r.returncode == 2 and "already exists" in r.stderr and "Traceback" not in r.stderr
    assert (trained_run / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "--epochs", "0"], "epochs 0 must be in [1, 100000]"),
        (["train", "--dropout", "1.5"], "dropout 1.5"),
        (["train", "--data", "no/such/file.csv"], "nor an existing file"),
        (["evaluate", "no/such/run"], "no such run folder"),
    ],
)
def test_usage_errors(args, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # in-process, as the corpus tests: the same main() a subprocess would run
    assert main(args) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_kaggle_flow_offline(trained_run, tmp_path, data_dir):
    folder = tmp_path / "kaggle"
    r = run_cli("data", "kaggle-csv", "--out", str(folder), "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    train_lines = (folder / "train.csv").read_text().splitlines()
    test_lines = (folder / "test.csv").read_text().splitlines()
    assert len(train_lines) == 42_001 and len(test_lines) == 28_001
    assert train_lines[0].startswith("label,pixel0,") and test_lines[0].startswith("pixel0,pixel1,")
    r = run_cli("predict", str(trained_run), "--input", str(folder / "test.csv"), "--out", str(tmp_path / "s.csv"))
    assert r.returncode == 0, r.stderr
    r = run_cli("data", "score", str(tmp_path / "s.csv"), str(folder / "answers.csv"))
    assert r.returncode == 0 and "accuracy 0.9" in r.stdout
    r = run_cli("evaluate", str(trained_run), "--data", str(folder / "train.csv"), "--json")
    assert json.loads(r.stdout)["n"] == 42_000


def test_data_fetch_reports_the_verified_cache(data_dir):
    r = run_cli("data", "fetch", "mnist", "--data-dir", str(data_dir))
    assert r.returncode == 0 and "verified" not in r.stdout and "mnist ready in" in r.stdout


@pytest.mark.slow
def test_train_with_a_recipe_records_it_and_flags_override(tmp_path, data_dir):
    run = tmp_path / "fast"
    r = run_cli(
        "train",
        "--recipe",
        "fast",
        "--epochs",
        "1",
        "--train-size",
        "1000",
        "--val-size",
        "200",
        "--no-augment",
        "--shear",
        "0.1",
        *(["--typed-digits"] if TYPED_INSTALLED else []),
        "--handwriting-fonts",
        "--out",
        str(run),
        "--data-dir",
        str(data_dir),
    )
    assert r.returncode == 0, r.stderr
    assert "Model: CompactCNN" in r.stdout
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["recipe"] == "fast" and config["model"]["arch"] == "compact"
    assert config["train"]["epochs"] == 1 and config["train"]["batch_size"] == 128  # flag, recipe
    assert config["augment"]["enabled"] is False  # --no-augment turned off what the fast recipe turns on
    assert config["augment"]["rotation_deg"] == 5.0  # the recipe's light policy stays recorded
    assert config["augment"]["shear_rad"] == 0.1  # --shear sets the field the recipe left at 0
    if TYPED_INSTALLED:  # 1,000 MNIST images, the 3,330 typed and 7,980 handwriting-font digits of fonts.py
        added = "(mnist + typed digits + handwriting-font digits)"
        assert f"data: 12,310 training, 200 validation images {added}" in r.stdout
        assert config["data"]["typed_digits"] is True
    else:
        assert "data: 8,980 training, 200 validation images (mnist + handwriting-font digits)" in r.stdout
    assert config["data"]["handwriting_fonts"] is True
    r = run_cli("summary", "--recipe", "best")
    assert "Model: ReferenceCNN" in r.stdout
    r = run_cli("train", "--help")  # what a flag left out means, per recipe
    assert "fast: --arch compact --epochs 5 --batch-size 128" in r.stdout
