"""Nothing the user has is clobbered, mislabelled or reused wrongly: outputs that would replace an input, a run's own
files or an existing file are refused (real CLI subprocesses); a run's model.onnx serves only the model it was
exported from; small datasets train without flags; resume opens no path that the checkpoint alone names."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, copy_run, replace_model, run_cli

from digitlab.errors import DigitlabError
from digitlab.export import exported_from, onnx_session
from digitlab.files import hold_lock, is_locked
from digitlab.formats import read_idx_pair, write_kaggle_csv
from digitlab.runs import check_output, claim_run, remove_run


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory, mnist_dir):
    """A labelled 2,000-row Kaggle-style CSV cut from MNIST's training set."""
    images, labels = read_idx_pair(mnist_dir / "train-images-idx3-ubyte", mnist_dir / "train-labels-idx1-ubyte")
    path = tmp_path_factory.mktemp("small") / "small.csv"
    write_kaggle_csv(path, images[:2000], labels[:2000])
    return path


def one_error_line(r, *words: str) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digitlab: error: ") and "Traceback" not in r.stderr, r.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_predict_refuses_to_write_over_its_input_or_the_model(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path / "run")
    test_csv = tmp_path / "test.csv"
    write_kaggle_csv(test_csv, np.zeros((3, 28, 28), dtype=np.uint8))
    original, model = test_csv.read_bytes(), (run / "model.safetensors").read_bytes()
    one_error_line(run_cli("predict", str(run), "--input", str(test_csv), "--out", str(test_csv)), "also an input")
    one_error_line(run_cli("predict", str(run), "--input", str(test_csv), "--out", str(run / "model.safetensors"),
                           "--force"), "run folder")  # fmt: skip
    assert test_csv.read_bytes() == original and (run / "model.safetensors").read_bytes() == model


def test_replacing_an_existing_output_needs_force(trained_run, tmp_path):
    test_csv = tmp_path / "test.csv"
    write_kaggle_csv(test_csv, np.zeros((3, 28, 28), dtype=np.uint8))
    out = tmp_path / "submission.csv"
    out.write_text("mine")
    one_error_line(run_cli("predict", str(trained_run), "--input", str(test_csv), "--out", str(out)), "--force")
    assert out.read_text() == "mine"
    assert run_cli("predict", str(trained_run), "--input", str(test_csv), "--out", str(out), "--force").returncode == 0
    assert out.read_text().startswith("ImageId,Label")


def test_a_runs_onnx_export_serves_only_the_model_it_was_exported_from(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path / "run")  # evaluated once already: model.onnx beside the weights

    def accuracy(*flags: str) -> float:
        r = run_cli("evaluate", str(run), "--json", *flags)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["accuracy"]

    before = accuracy()
    replace_model(run)  # another model, older than model.onnx: its time cannot tell that the export is stale
    changed = accuracy("--engine", "torch")
    assert changed < before - 0.01  # digits 0 and 1 swapped: the new model is measurably another
    assert accuracy() == accuracy("--engine", "onnx") == pytest.approx(changed, abs=1e-4)  # exported again
    assert exported_from(onnx_session(run / "model.onnx")) is not None
    (run / "model.onnx").write_bytes((run / "model.onnx").read_bytes()[:5000])  # cut short: exported again too
    assert accuracy("--engine", "onnx") == pytest.approx(changed, abs=1e-4)


@pytest.mark.slow
def test_export_and_report_outputs_never_clobber(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path / "run")
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    for command in (["export"], ["report"]):
        one_error_line(run_cli(*command, str(run), "--out", str(keep)), "already exists", "--force")
        one_error_line(run_cli(*command, str(run), "--out", str(run / "last.safetensors"), "--force"), "run folder")
    assert keep.read_text() == "mine"


def test_kaggle_csv_refuses_existing_files_before_writing_any(tmp_path, data_dir):
    (tmp_path / "test.csv").write_text("mine")
    one_error_line(run_cli("data", "kaggle-csv", "--out", str(tmp_path), "--data-dir", str(data_dir)), "test.csv")
    assert not (tmp_path / "train.csv").exists() and (tmp_path / "test.csv").read_text() == "mine"


def test_check_output_rules(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    with pytest.raises(DigitlabError, match="owns"):
        check_output(run / "metrics.json", force=True)
    assert check_output(run / "model.onnx", force=True, owned_name="model.onnx") == run / "model.onnx"
    with pytest.raises(DigitlabError, match="is a folder"):
        check_output(run, force=True)
    assert check_output(tmp_path / "new.csv") == tmp_path / "new.csv"


def test_claim_run_reuses_only_the_same_config(tmp_path):
    folder = tmp_path / "run"
    assert claim_run(folder, {"train": {"epochs": 3}}) == "new"
    folder.mkdir()
    (folder / "config.json").write_text('{"config": {"train": {"epochs": 3, "threads": 1}}}')
    (folder / "metrics.json").write_text("{}")
    assert claim_run(folder, {"train": {"epochs": 3, "threads": 2}}) == "finished"  # threads: how, not what
    with pytest.raises(DigitlabError, match=r"train.epochs: 3 -> 4.*--force"):
        claim_run(folder, {"train": {"epochs": 4}})
    assert claim_run(folder, {"train": {"epochs": 4}}, force=True) == "new" and not folder.exists()
    stranger = tmp_path / "photos"
    stranger.mkdir()
    (stranger / "cat.jpg").write_text("")
    with pytest.raises(DigitlabError, match="not a digitlab"):
        claim_run(stranger, {}, force=True)
    assert (stranger / "cat.jpg").exists()


def test_a_held_lock_is_seen_refused_and_removed_as_it_is_let_go(tmp_path):
    path = tmp_path / ".lock"
    lock = hold_lock(path)
    assert is_locked(path)  # another open file of the same path: refused, as in another process
    with pytest.raises(BlockingIOError):
        hold_lock(path)
    lock.close()
    assert not path.exists() and not is_locked(path) and not path.exists()  # testing it leaves nothing either
    assert hold_lock(tmp_path / "no-such-folder" / ".lock") is None  # nothing can be locked there: no guard, no error


def test_a_run_being_trained_is_neither_trained_again_nor_removed_by_another_command(tmp_path, data_dir):
    """A training process holds its run folder: while it trains, `train --resume` of the folder and the claim that
    `ensemble` and `lab` make on member folders (even with --force) refuse with one line, where before they resumed
    the same run twice at once or removed it from under the process; nor is the folder around it removed. Ctrl-C then
    stops the process cleanly, and the folder is resumable by anyone once it has ended."""
    out = tmp_path / "ensemble" / "member-0"
    process = subprocess.Popen([sys.executable, "-m", "digitlab", "train", "--recipe", "fast", "--epochs", "50",
                                "--train-size", "2000", "--val-size", "200", "--checkpoint-every", "5", "--out",
                                str(out), "--data-dir", str(data_dir)], cwd=REPO, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.time() + 120
        while not (out / "last.safetensors").is_file() and time.time() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert (out / "last.safetensors").is_file() and process.poll() is None, process.stderr.read()
        one_error_line(run_cli("train", "--resume", str(out)), "being trained by another process")
        config = json.loads((out / "config.json").read_text())["config"]
        for force in (False, True):
            with pytest.raises(DigitlabError, match="being trained by another process"):
                claim_run(out, config, force=force)
        (out.parent / "ensemble.json").write_text("{}")  # the folder around it is recognisably an ensemble's
        with pytest.raises(DigitlabError, match="member-0 is being trained"):
            remove_run(out.parent)  # what --force does to an ensemble or lab folder
        assert process.poll() is None and (out / "config.json").is_file()  # still training, its folder whole
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C: a checkpoint between two steps, exit 130
        process.wait(timeout=120)
    assert process.returncode == 130 and claim_run(out, config) == "resume"  # the lock went with the process


@pytest.mark.slow
def test_small_csv_trains_without_a_validation_flag(small_csv, tmp_path):
    out = tmp_path / "run"
    r = run_cli("train", "--recipe", "fast", "--data", str(small_csv), "--epochs", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "1,800 training, 200 validation images" in r.stdout and "chosen automatically" in r.stdout
    assert '"val_images": 200' in (out / "config.json").read_text()


@pytest.mark.slow
def test_resume_does_not_open_a_data_path_stored_in_the_checkpoint(small_csv, tmp_path):
    out = tmp_path / "run"
    r = run_cli("train", "--recipe", "fast", "--data", str(small_csv), "--epochs", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    (out / "metrics.json").unlink()
    one_error_line(run_cli("train", "--resume", str(out)), "--data", str(small_csv))
    r = run_cli("train", "--resume", str(out), "--data", str(small_csv))
    assert r.returncode == 0 and "run saved in" in r.stdout, r.stderr
