"""Readers: IDX (raw and gzip), Kaggle CSV, .npz — good inputs read exactly, bad inputs give a located DataError."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import idx_bytes, write_idx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digitlab.errors import DataError
from digitlab.formats import (
    KAGGLE_PIXEL_HEADER,
    read_csv,
    read_idx,
    read_idx_pair,
    read_images,
    read_npz,
    write_kaggle_csv,
    write_submission,
)


def csv_text(images, labels=None, header=True, sep="\n") -> str:
    rows = []
    if header:
        rows.append(",".join((["label"] if labels is not None else []) + KAGGLE_PIXEL_HEADER))
    for i, img in enumerate(images):
        cells = ([str(labels[i])] if labels is not None else []) + [str(v) for v in img.reshape(-1)]
        rows.append(",".join(cells))
    return sep.join(rows) + sep


# ---------------------------------------------------------------------------------------------------------- IDX
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, tiny_images, compress):
    images, labels = tiny_images
    ip = write_idx(tmp_path / "img", images, compress)
    lp = write_idx(tmp_path / "lab", labels, compress)
    got_images, got_labels = read_idx_pair(ip, lp)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert read_images(ip)[1] is None


def test_real_mnist_files(mnist_dir):
    images, labels = read_idx_pair(mnist_dir / "t10k-images-idx3-ubyte", mnist_dir / "t10k-labels-idx1-ubyte")
    assert images.shape == (10_000, 28, 28) and labels.shape == (10_000,)
    assert np.bincount(labels).tolist()[:3] == [980, 1135, 1032]  # MNIST's known class counts
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]


@pytest.mark.parametrize(
    "mutate, where, words",
    [
        (lambda b: b[:100], "byte 100", "ends early"),
        (lambda b: b[:10], "byte 10", "header cut off"),
        (lambda b: b + b"\x00", "byte", "trailing data"),
        (lambda b: b"\x00\x00\x09\x03" + b[4:], "byte 0", "magic"),
        (lambda b: b"\x12\x34\x08\x03" + b[4:], "byte 0", "magic"),
        (lambda b: b[:3] + b"\x02" + b[4:], "byte 3", "2 dimensions"),
        (lambda b: b[:8] + (27).to_bytes(4, "big") + b[12:], "byte 8", "27x28"),
        (lambda b: b[:4] + (600_000_000).to_bytes(4, "big") + b[8:], "byte 4", "allowed"),
        (lambda b: b"", "byte 0", "too short"),
    ],
)
def test_idx_rejects_bad_images(tmp_path, tiny_images, mutate, where, words):
    path = tmp_path / "bad"
    path.write_bytes(mutate(idx_bytes(tiny_images[0])))
    with pytest.raises(DataError) as e:
        read_idx(path, "images")
    assert str(path) in str(e.value) and where in str(e.value) and words in str(e.value)


def test_idx_rejects_cut_gzip_and_bad_labels(tmp_path, tiny_images):
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(idx_bytes(tiny_images[0]))[:-30])
    with pytest.raises(DataError, match="gzip"):
        read_idx(cut, "images")
    labels = write_idx(tmp_path / "labels", np.array([1, 2, 12]))
    with pytest.raises(DataError, match="byte 10.*label 12"):
        read_idx(labels, "labels")
    short_labels = write_idx(tmp_path / "l4", np.array([1, 2, 3, 4]))
    with pytest.raises(DataError, match="4 labels for 5 images"):
        read_idx_pair(write_idx(tmp_path / "i5", tiny_images[0]), short_labels)


# ---------------------------------------------------------------------------------------------------------- CSV
@pytest.mark.parametrize("labelled", [True, False])
def test_csv_round_trip_through_writer(tmp_path, tiny_images, labelled):
    images, labels = tiny_images
    path = tmp_path / "x.csv"
    write_kaggle_csv(path, images, labels if labelled else None)
    got_images, got_labels = read_csv(path)
    np.testing.assert_array_equal(got_images, images)
    assert (got_labels is not None) == labelled
    if labelled:
        np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.parametrize("variant", ["bom", "crlf", "no-final-newline", "spaces", "quoted-header", "blank-lines"])
def test_csv_accepts_unusual_but_valid(tmp_path, tiny_images, variant):
    images, labels = tiny_images
    text = csv_text(images, labels)
    if variant == "bom":
        text = "\ufeff" + text
    elif variant == "crlf":
        text = text.replace("\n", "\r\n")
    elif variant == "no-final-newline":
        text = text.rstrip("\n")
    elif variant == "spaces":
        text = text.replace(",", " , ")
    elif variant == "quoted-header":
        head, rest = text.split("\n", 1)
        text = ",".join(f'"{c}"' for c in head.split(",")) + "\n" + rest
    elif variant == "blank-lines":
        text = text.replace("\n", "\n\n") + "\n\n"
    path = tmp_path / "x.csv"
    path.write_text(text, newline="")
    got_images, got_labels = read_csv(path)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def _replace_cell(text: str, row: int, col: int, value: str) -> str:
    lines = text.split("\n")
    cells = lines[row - 1].split(",")
    cells[col - 1] = value
    lines[row - 1] = ",".join(cells)
    return "\n".join(lines)


@pytest.mark.parametrize(
    "edit, where, words",
    [
        (lambda t: _replace_cell(t, 3, 5, "abc"), "row 3, column 5", "'abc' is not a pixel value"),
        (lambda t: _replace_cell(t, 3, 5, "256"), "row 3, column 5", "pixel 256"),
        (lambda t: _replace_cell(t, 4, 9, "-1"), "row 4, column 9", "'-1' is not a pixel value"),
        (lambda t: _replace_cell(t, 2, 2, "3.5"), "row 2, column 2", "'3.5'"),
        (lambda t: _replace_cell(t, 5, 1, "10"), "row 5, column 1", "label 10"),
        (lambda t: _replace_cell(t, 5, 1, "x"), "row 5, column 1", "not a label"),
        (lambda t: _replace_cell(t, 2, 1, ""), "row 2, column 1", "not a label"),
        (lambda t: t.replace("\n", ",7\n", 2).replace(",7\n", "\n", 1), "row 2", "786 columns"),
        (lambda t: "\n".join(line.rsplit(",", 1)[0] for line in t.split("\n")), "row 1", "pixel783"),
        (lambda t: t.replace("pixel5,", "pixelfive,", 1), "row 1, column 7", "'pixelfive'"),
        (lambda t: t.split("\n", 1)[1], "row 1", "no header"),
        (lambda t: t.split("\n", 1)[0] + "\n", "row 2", "only a header"),
        (lambda t: "", None, "empty"),
        (lambda t: t.replace("0,", "0\x00,", 1), "byte", "NUL"),
    ],
)
def test_csv_rejects_bad_input(tmp_path, tiny_images, edit, where, words):
    path = tmp_path / "bad.csv"
    path.write_text(edit(csv_text(*tiny_images)))
    with pytest.raises(DataError) as e:
        read_csv(path)
    message = str(e.value)
    assert str(path) in message and words in message
    if where:
        assert where in message


def test_csv_mixed_row_lengths_names_the_row(tmp_path, tiny_images):
    lines = csv_text(*tiny_images).split("\n")
    lines[4] = lines[4] + ",0"
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match="row 5: 786 columns, expected 785"):
        read_csv(path)


def test_png_is_not_read_as_data(tmp_path):
    path = tmp_path / "digit.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(DataError):
        read_images(path)


# ---------------------------------------------------------------------------------------------------------- NPZ
def test_npz_good_and_bad(tmp_path, tiny_images):
    images, labels = tiny_images
    np.savez(tmp_path / "a.npz", images=images, labels=labels)
    got, got_labels = read_npz(tmp_path / "a.npz")
    np.testing.assert_array_equal(got, images)
    np.savez(tmp_path / "flat.npz", x=images.reshape(5, 784).astype(np.int64))
    assert read_npz(tmp_path / "flat.npz")[0].shape == (5, 28, 28)
    cases = {
        "keys.npz": dict(pixels=images),
        "float.npz": dict(images=images.astype(np.float32)),
        "shape.npz": dict(images=images[:, :20]),
        "range.npz": dict(images=images.astype(np.int32) + 1),
        "labels.npz": dict(images=images, labels=labels[:3]),
        "label10.npz": dict(images=images, labels=labels + 6),
    }
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(DataError) as e:
            read_npz(tmp_path / name)
        assert name in str(e.value)
    (tmp_path / "pickle.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataError, match="not a readable"):
        read_npz(tmp_path / "pickle.npz")
    np.savez(tmp_path / "obj.npz", images=np.array([object()], dtype=object))
    with pytest.raises(DataError):
        read_npz(tmp_path / "obj.npz")


def test_submission_writer(tmp_path):
    write_submission(tmp_path / "s.csv", np.array([7, 2, 1]))
    assert (tmp_path / "s.csv").read_text() == "ImageId,Label\n1,7\n2,2\n3,1\n"


# ---------------------------------------------------------------------------------------------------------- fuzz
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000))
def test_random_bytes_only_raise_data_error(tmp_path, data):
    path = tmp_path / "fuzz"
    path.write_bytes(data)
    try:
        images, labels = read_images(path)
    except DataError:
        return
    assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 4000), flip=st.integers(0, 4000), value=st.integers(0, 255), gz=st.booleans())
def test_near_valid_idx_only_raises_data_error(tmp_path, tiny_images, cut, flip, value, gz):
    data = bytearray(idx_bytes(tiny_images[0]))
    if flip < len(data):
        data[flip] = value
    data = bytes(data[: max(cut, 0)]) if cut < len(data) else bytes(data)
    path = tmp_path / "near.idx"
    path.write_bytes(gzip.compress(data) if gz else data)
    try:
        images = read_idx(path, "images")
    except DataError:
        return
    assert images.shape[1:] == (28, 28)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(0, 20000), junk=st.text(max_size=5))
def test_near_valid_csv_only_raises_data_error(tmp_path, tiny_images, pos, junk):
    text = csv_text(*tiny_images)
    pos = min(pos, len(text))
    path = tmp_path / "near.csv"
    path.write_text(
        text[:pos] + junk + text[pos:], encoding="utf-8", errors="surrogatepass"
    ) if "\ud800" not in junk else path.write_bytes((text[:pos] + text[pos:]).encode())
    try:
        images, labels = read_csv(path)
    except DataError:
        return
    assert images.shape[1:] == (28, 28) and (labels is None or labels.max() <= 9)


BOUNDED_READ = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # 4 GiB: the claims below need 7.8 GB
from digitlab.errors import DataError
from digitlab.formats import read_images
try:
    read_images(sys.argv[1])
except DataError as e:
    print("DataError:", e)
"""


@pytest.mark.parametrize("kind", ["idx", "idx.gz", "npz"])
def test_a_header_claiming_10_million_images_is_refused_without_allocating(tmp_path, kind):
    header = bytes([0, 0, 8, 3]) + (10_000_000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    path = tmp_path / f"claims.{kind}"
    if kind == "npz":  # a .npy header declaring (10 M, 28, 28) over 784 bytes of data
        npy = io.BytesIO()
        np.lib.format.write_array_header_1_0(npy, {"descr": "|u1", "fortran_order": False,
                                                   "shape": (10_000_000, 28, 28)})  # fmt: skip
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("images.npy", npy.getvalue() + bytes(784))
    else:
        data = header + bytes(784)
        path.write_bytes(gzip.compress(data) if kind == "idx.gz" else data)
    assert path.stat().st_size < 1100
    r = subprocess.run([sys.executable, "-c", BOUNDED_READ, str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "MemoryError" not in r.stderr, r.stderr[-500:]
    assert r.stdout.startswith("DataError:") and str(path) in r.stdout, r.stdout


def test_data_errors_survive_pickling_across_processes():
    """Worker processes and Ray tasks send errors back pickled: the located message must arrive whole."""
    import pickle

    error = pickle.loads(pickle.dumps(DataError("train.csv", "row 12, column 3", "pixel 300, expected 0..255")))
    assert isinstance(error, DataError) and str(error) == "train.csv, row 12, column 3: pixel 300, expected 0..255"
