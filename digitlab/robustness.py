"""`digitlab robustness RUN_DIR`: how a model does beyond MNIST's clean test set.

Four measurements, one table, `robustness.json` in the run folder, and a section in the run's `report.html`:
- the MNIST test set under every corruption of corruptions.py (MNIST-C's severities where the corruption is one of
  theirs), generated deterministically from a seed and cached beside the dataset: clean accuracy, each corruption's
  accuracy, their mean and the worst;
- digits typed in the handwriting fonts installed on the machine (fonts.py: ten Debian packages), each digit at two
  sizes, dark ink on white paper, through the same MNIST-style preprocessing the server uses (preprocess.py):
  another set of writers;
- test digits turned into pictures of paper (dark ink on light paper, 280 px; lit from one side; off-centre on a
  larger sheet; a thick marker; a thin pen; a small digit on a large sheet), through the same preprocessing;
- other writers: UCI's 1,797 optical-recognition test digits (13 writers, 8x8), as pictures of ink on paper through
  the same preprocessing. Like the font digits, the same set whatever the split.

Any engine `load_engine` accepts is measured (a run, an ensemble, an .onnx file). `split="val"` measures the
run's own validation split instead of the test set (robustness_val.json): the figures to choose an augmentation
policy or a model on, since the corrupted test set may choose nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np

from . import console
from .corruptions import CORRUPTIONS, corrupt
from .data import load_test
from .datasets import cached_arrays, data_root
from .engines import load_engine
from .errors import DigitlabError
from .fonts import FONT_SIZES, find_fonts, font_digits
from .predict import validation_split
from .preprocess import mnist_style
from .report import robustness_rows
from .runs import ROBUSTNESS, ROBUSTNESS_VAL, check_output, model_sha256, write_json

SUITE_VERSION = 1  # bump when a corruption changes: cached sets of another version are never reused


def cached_set(kind: str, images: np.ndarray, seed: int, make, check) -> dict[str, np.ndarray]:
    """Arrays made from `images` (a corrupted set, pictures of paper), from the data cache when this exact set
    (suite version, kind, seed, images) was made before and `check(cached)` accepts it, else `make()`'s, kept
    there."""
    key = hashlib.sha256(images.tobytes()).hexdigest()[:16]
    path = data_root() / "corrupted" / f"v{SUITE_VERSION}-{kind}-seed{seed}-{key}.npz"
    return cached_arrays(path, make, check)


def corrupted(name: str, images: np.ndarray, seed: int) -> np.ndarray:
    """The corrupted test set, from the cache when this exact set was made before."""

    def same_shape(cached: dict) -> bool:
        return cached["images"].shape == images.shape and cached["images"].dtype == np.uint8

    return cached_set(name, images, seed, lambda: {"images": corrupt(name, images, seed)}, same_shape)["images"]


PHOTO_IMAGES = 500  # test digits per photo-like variant (each is a full-size picture through preprocess.py)


def on_paper(digit: np.ndarray, size: int, page: int, corner: tuple[int, int], pen: str = "", lit: bool = False):
    """An MNIST digit as a picture of dark ink (gray 30) on light paper (235): enlarged to `size` pixels, drawn
    with a thicker or thinner pen, placed at `corner` on a `page`-pixel square sheet, optionally lit from one side."""
    from PIL import Image
    from scipy import ndimage

    big = np.asarray(Image.fromarray(digit).resize((size, size), Image.BICUBIC))
    if pen:  # a 15-px square pen widens the strokes, a 7-px one thins them (scipy's separable filters: the pixels
        # of PIL's MaxFilter(15) / MinFilter(7), some 40x faster on 280-px pictures)
        big = (ndimage.maximum_filter(big, 15, mode="nearest") if pen == "thick"
               else ndimage.minimum_filter(big, 7, mode="nearest"))  # fmt: skip
    ink = big.astype(np.float64) / 255
    sheet = np.full((page, page), 235.0)
    top, left = corner
    sheet[top : top + size, left : left + size] = sheet[top : top + size, left : left + size] * (1 - ink) + 30 * ink
    if lit:
        ys, xs = np.mgrid[0:page, 0:page] / page
        sheet = sheet * (0.45 + 0.55 * (0.6 * xs + 0.4 * ys))  # 45 % of the light on the far corner
    return Image.fromarray(np.clip(sheet, 0, 255).astype(np.uint8))


PHOTO_LIKE = {  # name -> picture of one digit; rng places the off-centre ones
    "evenly lit scan": lambda d, rng: on_paper(d, 280, 280, (0, 0)),
    "lit from one side": lambda d, rng: on_paper(d, 280, 280, (0, 0), lit=True),
    "off-centre on a larger sheet": lambda d, rng: on_paper(d, 200, 600, tuple(rng.integers(0, 400, 2))),
    "thick marker": lambda d, rng: on_paper(d, 280, 280, (0, 0), pen="thick"),
    "thin pen": lambda d, rng: on_paper(d, 280, 280, (0, 0), pen="thin"),
    "small digit on a large sheet": lambda d, rng: on_paper(d, 40, 800, (380, 380)),
}


def photo_pictures(images: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Each PHOTO_LIKE variant of `images` as pictures of paper through the server's preprocessing (N x 28 x 28)."""
    rng = np.random.default_rng(seed)
    return {name: np.stack([mnist_style(make(digit, rng)) for digit in images]) for name, make in PHOTO_LIKE.items()}


def same_as_made_now(cached: dict, made: dict) -> bool:
    """Whether cached pictures still are what the code makes: shapes, and the first picture of each set made again
    (`made`), so a change to the drawing or the preprocessing is never read from an old cache."""
    return cached.keys() == made.keys() and all(
        cached[k].dtype == np.uint8 and np.array_equal(cached[k][: len(made[k])], made[k]) for k in made
    )


def photo_like(engine, images: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, float]:
    """Accuracy on test digits turned into pictures of paper, each through the server's preprocessing. The pictures
    (5.7 s of drawing for 300 digits on a 2-core Zen 3 EPYC) are kept in the data cache, checked against their first
    digit made again: only the off-centre variant draws from `rng`, so a first digit made alone is drawn as in the
    whole set."""
    images, labels = images[:PHOTO_IMAGES], labels[:PHOTO_IMAGES]

    def current(cached: dict) -> bool:
        first = photo_pictures(images[:1], seed)
        return same_as_made_now(cached, first) and all(len(v) == len(images) for v in cached.values())

    pictures = cached_set("photo-like", images, seed, lambda: photo_pictures(images, seed), current)
    return {name: accuracy(engine, pictures[name], labels)[0] for name in PHOTO_LIKE}


OTHER_WRITERS = "UCI optical recognition of handwritten digits, test set (scikit-learn's load_digits)"


def writer_pictures(ink: np.ndarray) -> dict[str, np.ndarray]:
    """UCI's 8x8 blocks (0-255) as 160-pixel pictures of ink on paper through the server's preprocessing."""
    return {"images": np.stack([mnist_style(on_paper(block, 160, 160, (0, 0))) for block in ink])}


def other_writers(engine) -> dict:
    """Other writers at another resolution: the 1,797 test digits of UCI's optical-recognition set, written by 13
    people on NIST forms and kept as 8x8 blocks that count the ink pixels of 4x4 (0-16); scikit-learn ships them, so
    nothing is downloaded. Each is enlarged to a 160-pixel picture of dark ink on light paper (on_paper) and goes
    through the server's preprocessing, as a photographed form would; the pictures are kept in the data cache."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    ink = np.round(digits.images * 255 / 16).astype(np.uint8)  # (1797, 8, 8): 0-16 ink pixels -> 0-255

    def current(cached: dict) -> bool:
        return same_as_made_now(cached, writer_pictures(ink[:1])) and len(cached["images"]) == len(ink)

    prepared = cached_set("uci-writers", ink, 0, lambda: writer_pictures(ink), current)["images"]  # (1797, 28, 28)
    acc, predicted = accuracy(engine, prepared, digits.target)
    missed = np.bincount(digits.target[predicted != digits.target], minlength=10)
    return {"source": OTHER_WRITERS, "digits": len(prepared), "writers": 13, "accuracy": acc,
            "missed_per_digit": missed.tolist()}  # fmt: skip


def accuracy(engine, images: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    if len(images) == 0:
        return float("nan"), np.zeros(0, np.int64)
    predicted = engine.predict_proba(images[:, None].astype(np.float32)).argmax(1)
    return float((predicted == labels).mean()), predicted


def measure(target, engine="auto", seed=0, limit=None, fonts=None, split: str = "test") -> dict:
    """Accuracy of the model on the clean test set (or the run's validation split), under each corruption, and on
    the font digits, photo-like pictures and other writers' digits."""
    if any(importlib.util.find_spec(name) is None for name in ("skimage", "scipy", "sklearn")):
        raise DigitlabError("digitlab robustness needs scikit-image, SciPy and scikit-learn: pip install "
                            "'digitlab[robust]'")  # fmt: skip
    if split not in ("test", "val"):
        raise DigitlabError(f"robustness: split {split!r} is neither 'test' nor 'val'")
    runner = load_engine(target, engine, "cpu")
    config = getattr(runner, "config", None)
    if split == "val":
        if not Path(target).is_dir():
            raise DigitlabError(f"{target}: --split val needs a run or ensemble folder (its validation split)")
        digits = validation_split(target, None)  # the named dataset the run recorded
    else:
        digits = load_test(config.data) if config is not None else None
        if digits is None:  # a model without a recorded named dataset (an .onnx file, a run trained on a file)
            from .config import DataConfig

            digits = load_test(DataConfig())
    images, labels = digits.images[:limit, 0].numpy(), digits.labels[:limit].numpy()
    clean, _ = accuracy(runner, images, labels)
    rows = {}
    with console.bar("corruptions", len(CORRUPTIONS), "sets") as bar:
        for name in CORRUPTIONS:
            rows[name], _ = accuracy(runner, corrupted(name, images, seed), labels)
            bar.update(advance=1)
    font_files = find_fonts(fonts)
    font_images, font_labels, font_names = font_digits(font_files)
    font_acc, font_predicted = accuracy(runner, font_images, font_labels)
    per_font = {
        name: float(np.mean([p == y for p, y, n in zip(font_predicted, font_labels, font_names) if n == name]))
        for name in dict.fromkeys(font_names)
    }
    pictures = photo_like(runner, images, labels, seed)
    worst = min(rows, key=rows.get)
    return {
        "model": runner.identity,
        "model_sha256": model_sha256(target),  # the report and the lab show or reuse it beside this model only
        "suite_version": SUITE_VERSION,
        "seed": seed,
        "split": split,
        "images": len(images),
        "limit": limit,  # the first `limit` images were asked for (None: all); a split may hold fewer
        "clean_accuracy": clean,
        "corruptions": rows,
        "mean_corrupted_accuracy": float(np.mean(list(rows.values()))),
        "worst": {"corruption": worst, "accuracy": rows[worst]},
        "photo_like": {"images_each": min(PHOTO_IMAGES, len(images)), "accuracy": pictures},
        "other_writers": other_writers(runner),
        "fonts": {"files": [f.name for f in font_files], "digits": len(font_images), "accuracy": font_acc,
                  "per_font": per_font, "sizes_px": list(FONT_SIZES)},
    }  # fmt: skip


def robustness(
    target, out=None, engine="auto", seed=0, limit=None, fonts=None, force=False, split="test", log=print
) -> dict:
    """Measure, write robustness.json (robustness_val.json for the validation split; default: in the run folder),
    print the table; returns the result."""
    target, name = Path(target), ROBUSTNESS_VAL if split == "val" else ROBUSTNESS
    if out is None and not target.is_dir():
        raise DigitlabError(f"{target} is a file: pass --out for {name}")
    path = check_output(out, (target,), force, owned_name=name) if out else target / name
    result = measure(target, engine, seed, limit, fonts, split)
    write_json(path, result)
    rows, images = robustness_rows(result), "validation" if split == "val" else "test"
    console.table(
        f"robustness of {result['model']['model']} ({result['images']:,} {images} images)",
        ["set", "accuracy"],
        rows,
        log=log,
    )
    log(f"worst corruption: {result['worst']['corruption']} ({result['worst']['accuracy']:.2%}); wrote {path}")
    return result
