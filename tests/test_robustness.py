"""The corruption suite (every corruption: shape, dtype, range, determinism, and that it changes the digit) and
`digitlab robustness` end to end: its table, robustness.json and the report's section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import replace_model, run_cli

from digitlab.corruptions import CORRUPTIONS, corrupt

pytest.importorskip("skimage", reason="the corruptions need scikit-image (pip install -e .[dev])")


@pytest.fixture(scope="module")
def digits(mnist_test) -> np.ndarray:
    return mnist_test[0][:16]


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_is_deterministic_in_range_and_changes_the_image(name, digits):
    out = corrupt(name, digits, seed=3)
    assert out.shape == digits.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, corrupt(name, digits, seed=3))  # the same seed: the same pixels
    assert (out != digits).mean() > 0.01, "the corruption left the digits as they were"
    assert corrupt(name, digits[:0]).shape == (0, 28, 28)


def test_random_corruptions_depend_on_the_seed(digits):
    for name in ("shot_noise", "impulse_noise", "glass_blur", "fog", "spatter", "zigzag"):
        assert not np.array_equal(corrupt(name, digits, seed=0), corrupt(name, digits, seed=1)), name


def test_pens_widen_and_thin_strokes_as_pils_rank_filters_do(digits):
    """The thick marker and the thin pen are 15- and 7-pixel square max/min filters (scipy's): PIL's MaxFilter and
    MinFilter, the oracle, give the same pictures."""
    from PIL import Image, ImageFilter

    from digitlab.robustness import on_paper

    for digit in digits[:3]:
        big = Image.fromarray(digit).resize((280, 280), Image.BICUBIC)
        for pen, oracle in (("thick", ImageFilter.MaxFilter(15)), ("thin", ImageFilter.MinFilter(7))):
            ink = np.asarray(big.filter(oracle), dtype=np.float64) / 255
            expected = np.clip(235 * (1 - ink) + 30 * ink, 0, 255).astype(np.uint8)
            np.testing.assert_array_equal(np.asarray(on_paper(digit, 280, 280, (0, 0), pen=pen)), expected)


class RecordingEngine:
    """An engine that answers 0 for every picture and keeps the pictures it was given."""

    def __init__(self):
        self.seen = []

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        self.seen.append(images[:, 0].astype(np.uint8))
        return np.eye(10, dtype=np.float32)[np.zeros(len(images), dtype=int)]


def test_photo_like_pictures_are_kept_and_an_outdated_cache_is_made_again(digits, tmp_path, monkeypatch):
    """The pictures of paper are drawn once and then read from the data cache; a cached set whose first picture is not
    what the code draws now (an older drawing or preprocessing) is drawn again, never measured."""
    from digitlab.robustness import PHOTO_LIKE, photo_like, photo_pictures

    monkeypatch.setenv("DIGITLAB_DATA_DIR", str(tmp_path))
    images, labels, name = digits[:6], np.zeros(6, dtype=int), next(iter(PHOTO_LIKE))
    drawn = photo_pictures(images, seed=0)

    def measured(cached=None) -> list[np.ndarray]:
        if cached is not None:  # written as the cache writes it, then measured
            (path,) = (tmp_path / "corrupted").glob("v*-photo-like-seed0-*.npz")
            np.savez(path, **cached)
        engine = RecordingEngine()
        photo_like(engine, images, labels, seed=0)
        return engine.seen

    assert all(np.array_equal(seen, drawn[k]) for seen, k in zip(measured(), PHOTO_LIKE))  # drawn and kept
    later = {**drawn, name: drawn[name].copy()}
    later[name][3] = 0  # a later picture changed in the cache: read from it, not drawn again
    assert np.array_equal(measured(later)[0], later[name])
    first = {**drawn, name: drawn[name].copy()}
    first[name][0] = 0  # the first picture is not what the code draws now: all drawn again
    assert all(np.array_equal(seen, drawn[k]) for seen, k in zip(measured(first), PHOTO_LIKE))


@pytest.mark.slow
def test_robustness_command_writes_table_json_and_report_section(trained_run, tmp_path):
    run = tmp_path / "run"
    import shutil

    shutil.copytree(trained_run, run)
    font = next(iter(sorted(Path("/usr/share/fonts").rglob("DejaVuSans.ttf"))), None)
    fonts = ["--fonts", str(font)] if font else []
    r = run_cli("robustness", str(run), "--limit", "300", *fonts)
    assert r.returncode == 0, r.stderr
    result = json.loads((run / "robustness.json").read_text())
    assert set(result["corruptions"]) == set(CORRUPTIONS) and result["images"] == 300
    accuracies = list(result["corruptions"].values())
    assert result["mean_corrupted_accuracy"] == pytest.approx(np.mean(accuracies))
    assert result["worst"]["accuracy"] == min(accuracies) < result["clean_accuracy"]
    assert "mean of the corruptions" in r.stdout and "worst corruption" in r.stdout
    photos = result["photo_like"]["accuracy"]
    assert len(photos) == 6 and photos["evenly lit scan"] >= 0.9 and photos["lit from one side"] >= 0.8
    if font:
        assert result["fonts"]["digits"] == 20 and result["fonts"]["accuracy"] >= 0.5
    writers = result["other_writers"]  # UCI's 1,797 digits of 13 other writers, 8x8, through the preprocessing
    assert writers["digits"] == 1797 and sum(writers["missed_per_digit"]) == round(1797 * (1 - writers["accuracy"]))
    assert 0.5 <= writers["accuracy"] < 1 and "other writers: UCI" in r.stdout
    r = run_cli("robustness", str(run), "--limit", "300", "--out", str(run / "config.json"))
    assert r.returncode == 2 and "would replace a file of the run folder" in r.stderr  # never over a run file
    r = run_cli("report", str(run))
    assert r.returncode == 0, r.stderr
    page = (run / "report.html").read_text()
    assert 'id="robustness"' in page and "mean of the corruptions" in page
    # the validation split: the figures to choose on, in their own file; the test set's stay as they were
    before = (run / "robustness.json").read_bytes()
    r = run_cli("robustness", str(run), "--split", "val", "--limit", "200", *fonts)
    assert r.returncode == 0, r.stderr
    assert "200 validation images" in r.stdout and (run / "robustness.json").read_bytes() == before
    val = json.loads((run / "robustness_val.json").read_text())
    assert val["split"] == "val" and val["images"] == 200 and set(val["corruptions"]) == set(CORRUPTIONS)
    assert val["clean_accuracy"] != result["clean_accuracy"] or val["corruptions"] != result["corruptions"]
    r = run_cli("robustness", str(run / "model.safetensors"), "--split", "val", "--out", str(tmp_path / "v.json"))
    assert r.returncode == 2 and "--split val needs a run or ensemble folder" in r.stderr
    replace_model(run)  # robustness.json was measured on the model before: the report shows it no more
    assert run_cli("report", str(run)).returncode == 0
    page = (run / "report.html").read_text()
    assert "measured on another model" in page and "mean of the corruptions" not in page


@pytest.mark.skipif(not Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").is_file(), reason="no DejaVu Sans")
def test_font_digits_leave_out_the_glyphs_a_font_lacks(tmp_path):
    """A font without some digits draws its missing-glyph box for them, which must not count as a digit: DejaVu Sans
    cut down (fontTools, matplotlib's dependency) to the digits other than 3 and 7 gives 8 digits per size."""
    from fontTools import subset

    from digitlab.fonts import FONT_SIZES, font_digits

    cut = tmp_path / "no-3-or-7.ttf"
    options = subset.Options()
    options.notdef_outline = True  # keep the box a missing glyph is drawn as
    font = subset.load_font("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="01245689")
    subsetter.subset(font)
    subset.save_font(font, str(cut), options)
    images, labels, names = font_digits([cut])
    assert sorted(set(labels.tolist())) == [0, 1, 2, 4, 5, 6, 8, 9] and len(labels) == 8 * len(FONT_SIZES)
    assert images.shape == (len(labels), 28, 28) and set(names) == {"no-3-or-7"}
    whole, _, _ = font_digits([Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")])
    assert len(whole) == 10 * len(FONT_SIZES)
