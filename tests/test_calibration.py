"""Calibration and "not a digit": the metrics against known answers, the temperature fit recovering a known
temperature, and `digitlab calibrate` then `--reject-below` end to end through evaluate, predict and the HTTP API."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
import torch
from conftest import copy_run, replace_model, run_cli, start_server

from digitlab.calibration import (
    auroc,
    expected_calibration_error,
    fit_temperature,
    layer_distances,
    typicality,
    whitening,
)


def test_auroc_is_the_mann_whitney_statistic():
    assert auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auroc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert auroc(np.array([1.0, 3.0]), np.array([2.0, 2.0])) == 0.5
    assert auroc(np.array([2.0]), np.array([2.0])) == 0.5  # ties count half


def test_expected_calibration_error_of_known_cases():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 200_000)
    labels = np.zeros(len(confidence), dtype=int)
    right = rng.random(len(confidence)) < confidence  # right exactly as often as it says: calibrated
    probabilities = np.stack(
        [np.where(right, confidence, 1 - confidence), np.where(right, 1 - confidence, confidence)], 1
    )
    assert expected_calibration_error(probabilities, labels) < 0.01
    always_sure = np.tile([1.0, 0.0], (100, 1))
    assert expected_calibration_error(always_sure, np.r_[np.zeros(70, int), np.ones(30, int)]) == pytest.approx(0.3)


def test_temperature_fit_recovers_the_temperature_labels_were_drawn_at():
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(20_000, 10, generator=generator, dtype=torch.float64)
    labels = torch.multinomial(torch.softmax(logits / 2.5, 1), 1, generator=generator)[:, 0]
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.05)


def test_typicality_is_the_share_of_validation_scores_at_least_as_novel():
    val = np.sort(np.arange(99, dtype=float))  # 0..98
    np.testing.assert_allclose(typicality(np.array([-1.0, 98.0, 1000.0]), val), [1.0, 2 / 100, 1 / 100])


def test_whitened_distances_equal_the_mahalanobis_definition():
    """(x - m)ᵀ P (x - m), nearest of the class means, computed as written; the whitened form must give the same."""
    generator = torch.Generator().manual_seed(0)
    features = [torch.randn(50, d, generator=generator, dtype=torch.float64) for d in (3, 40)]
    ood = {}
    for k, layer in enumerate(features):
        spread = torch.randn(layer.shape[1], layer.shape[1], generator=generator, dtype=torch.float64)
        ood[f"layer{k}.means"] = torch.randn(10, layer.shape[1], generator=generator, dtype=torch.float64)
        ood[f"layer{k}.precision"] = spread @ spread.T + torch.eye(layer.shape[1], dtype=torch.float64)
    for k, got in enumerate(layer_distances(features, whitening(ood))):
        diff = features[k][:, None, :] - ood[f"layer{k}.means"][None]  # (N, classes, D)
        squared = torch.einsum("ncd,de,nce->nc", diff, ood[f"layer{k}.precision"], diff).min(1).values
        np.testing.assert_allclose(got, torch.log(squared).numpy(), rtol=1e-10)


@pytest.mark.slow
def test_calibrate_then_reject_in_evaluate_predict_and_serve(trained_run, tmp_path, mnist_test):
    run = copy_run(trained_run, tmp_path / "run")
    r = run_cli("evaluate", str(run), "--reject-below", "auto")
    assert r.returncode == 2 and "digitlab calibrate" in r.stderr  # not calibrated yet: one line saying what to do
    r = run_cli("calibrate", str(run))
    assert r.returncode == 0, r.stderr
    saved = json.loads((run / "calibration.json").read_text())
    assert saved["ece_test_after"] < saved["ece_test_before"] and 0.05 < saved["temperature"] < 20
    assert saved["auroc"]["uniform noise"] > 0.99 and saved["test_rejected_at_auto"] < 0.02
    r = run_cli("evaluate", str(run), "--reject-below", "auto", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert 0 < result["rejected"] < 200 and result["accuracy_accepted"] >= result["accuracy"]
    images, labels = mnist_test
    noise = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "mixed.npz", images=np.concatenate([images[:20], noise]))
    r = run_cli("predict", str(run), "--input", str(tmp_path / "mixed.npz"), "--out", str(tmp_path / "s.csv"),
                "--reject-below", "auto")  # fmt: skip
    assert r.returncode == 0, r.stderr
    written = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1, dtype=int)[:, 1]
    assert (written[20:] == -1).all() and (written[:20] == labels[:20]).mean() >= 0.9
    process, url = start_server(run, "--reject-below", "auto")
    try:
        body = json.dumps({"pixels": [images[0].tolist(), noise[0].tolist()]}).encode()
        request = urllib.request.Request(f"{url}/predict", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            digit, not_digit = json.load(response)["predictions"]
        assert digit["digit"] == labels[0] and digit["not_a_digit"] is False and digit["typicality"] > 0.005
        assert not_digit["digit"] is None and not_digit["not_a_digit"] is True
        with urllib.request.urlopen(f"{url}/health", timeout=30) as response:
            assert json.load(response)["reject_below"] == 0.005
    finally:
        process.terminate()
        process.wait(timeout=10)
    replace_model(run)  # the calibration was fitted to the model before: refused beside this one, until calibrated
    r = run_cli("evaluate", str(run), "--reject-below", "auto")
    assert r.returncode == 2 and "fitted to another model" in r.stderr and f"digitlab calibrate {run}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
