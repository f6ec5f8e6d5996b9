"""Stratified, seeded splits and the dataset cache: verification, corruption recovery, clear fetch failures."""

from __future__ import annotations

import dataclasses
import gzip
import http.server
import shutil
import ssl
import subprocess
import threading
import time

import numpy as np
import pytest
import torch
from conftest import TYPED_INSTALLED

from digitlab import datasets
from digitlab.config import DataConfig
from digitlab.data import load_source, load_train_val, stratified_split
from digitlab.datasets import cached_arrays
from digitlab.errors import DigitlabError
from digitlab.fonts import typed_digits, typed_fonts


def test_stratified_split_exact_disjoint_and_seeded():
    labels = torch.tensor(np.repeat(np.arange(10), [100, 200, 50, 50, 100, 100, 100, 100, 100, 100]))
    rest, chosen = stratified_split(labels, 100, seed=1)
    assert len(chosen) == 100 and len(rest) == len(labels) - 100
    assert not set(rest) & set(chosen)
    counts = np.bincount(labels.numpy()[chosen], minlength=10)
    assert counts.tolist() == [10, 20, 5, 5, 10, 10, 10, 10, 10, 10]
    assert np.array_equal(stratified_split(labels, 100, seed=1)[1], chosen)
    assert not np.array_equal(stratified_split(labels, 100, seed=2)[1], chosen)
    with pytest.raises(DigitlabError):
        stratified_split(labels, len(labels), seed=0)


def test_train_val_split_from_training_data_only(data_dir):
    config = DataConfig(val_size=1000, train_size=3000, data_dir=str(data_dir))
    train, val = load_train_val(config, seed=0)
    assert len(train) == 3000 and len(val) == 1000
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (1, 28, 28)
    shares = np.bincount(val.labels.numpy(), minlength=10) / 1000
    full = np.bincount(load_source("mnist", "train", str(data_dir)).labels.numpy(), minlength=10) / 60000
    assert np.abs(shares - full).max() < 0.002  # stratified: each class within rounding of its share
    train_bytes = {bytes(x) for x in train.images.numpy().reshape(3000, -1)}
    assert not any(bytes(x) in train_bytes for x in val.images.numpy().reshape(1000, -1)[:200])


def test_corrupted_cache_is_detected_and_refetched(tmp_path, mnist_dir, monkeypatch):
    """A cache file whose hash is wrong is replaced from the next source (here: a local folder)."""
    spec = dataclasses.replace(datasets.DATASETS["mnist"], local_dirs=(str(mnist_dir),), mirrors=(), npm_package=None)
    monkeypatch.setitem(datasets.DATASETS, "mnist", spec)
    cache = tmp_path / "cache"
    folder = datasets.fetch("mnist", cache, verbose=False)
    target = folder / "t10k-labels-idx1-ubyte"
    target.write_bytes(target.read_bytes()[:-1] + b"\x09")
    datasets.fetch("mnist", cache, verbose=False)
    assert target.read_bytes() == (mnist_dir / "t10k-labels-idx1-ubyte").read_bytes()


def test_failed_fetch_lists_sources_and_leaves_nothing(tmp_path, monkeypatch):
    bogus = tmp_path / "bogus"
    bogus.mkdir()
    (bogus / "train-images-idx3-ubyte").write_bytes(b"not mnist")
    spec = dataclasses.replace(
        datasets.DATASETS["mnist"], local_dirs=(str(bogus),), mirrors=("http://127.0.0.1:9/",), npm_package=None
    )
    monkeypatch.setitem(datasets.DATASETS, "mnist", spec)
    with pytest.raises(DigitlabError) as e:
        datasets.fetch("mnist", tmp_path / "cache", verbose=False)
    message = str(e.value)
    assert "does not match" in message and "127.0.0.1:9" in message
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))


@pytest.fixture
def https_server(tmp_path, monkeypatch):
    """start(handler_class) -> a real HTTPS server on 127.0.0.1 (a self-signed certificate for that address, which
    this process trusts through SSL_CERT_FILE) and its base URL; stopped after the test."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    servers = []

    def start(handler) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"https://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def serving(body: bytes, seconds_per_byte: float = 0.0):
    """A handler sending `body` whole, or a byte every `seconds_per_byte` (for at most 20 s: it stops by itself)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not seconds_per_byte:
                self.wfile.write(body)
                return
            deadline = time.monotonic() + 20
            for byte in body:
                if time.monotonic() > deadline:
                    return
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:  # the client gave up
                    return
                time.sleep(seconds_per_byte)

        def log_message(self, *args):
            pass

    return Handler


def test_a_mirror_that_trickles_is_left_for_the_next_source_and_a_fast_one_serves(https_server, mnist_dir):
    """Over real HTTPS on 127.0.0.1: a mirror sending a byte every 0.3 s (never silent long enough for the socket's
    timeout) is given up after the rate window; the same file sent at once is read and returned whole."""
    name = "t10k-labels-idx1-ubyte"
    raw = (mnist_dir / name).read_bytes()
    log = []
    slow = dataclasses.replace(datasets.DATASETS["mnist"], mirrors=(https_server(serving(gzip.compress(raw), 0.3)),))
    start = time.monotonic()
    assert datasets._from_mirrors(slow, name, log, timeout=5, min_rate=1000, window_s=2) is None
    assert time.monotonic() - start < 10 and "slower than 1,000 bytes/s" in log[0], log
    fast = dataclasses.replace(datasets.DATASETS["mnist"], mirrors=(https_server(serving(gzip.compress(raw))),))
    assert datasets._from_mirrors(fast, name, [], timeout=5, min_rate=1000, window_s=2) == raw


def test_cache_location_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITLAB_DATA_DIR", str(tmp_path / "env"))
    assert datasets.data_root() == tmp_path / "env"
    assert datasets.data_root(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv("DIGITLAB_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.data_root() == tmp_path / "xdg" / "digitlab"


def test_idx_folder_source(tmp_path, mnist_dir):
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(mnist_dir / name, tmp_path / name)
    digits = load_source(str(tmp_path), "test")
    assert len(digits) == 10_000
    with pytest.raises(DigitlabError, match="lacks"):
        load_source(str(tmp_path), "train")


def test_cached_arrays_are_reused_and_remade_when_unreadable(tmp_path):
    """The data cache's derived arrays (typed digits, corrupted test sets): read back when valid, made again, with no
    error, when the file is cut short, not an .npz, a bare .npy, or holds arrays of another shape."""
    path, made = tmp_path / "cache" / "set.npz", []

    def make():
        made.append(1)
        return {"images": np.arange(24, dtype=np.uint8).reshape(2, 3, 4)}

    def valid(cached):
        return cached["images"].shape == (2, 3, 4)

    first = cached_arrays(path, make, valid)
    again = cached_arrays(path, make, valid)
    assert len(made) == 1 and np.array_equal(first["images"], again["images"])
    for damage in (path.read_bytes()[:100], b"not an npz", "npy", "shape"):
        if damage == "npy":
            with open(path, "wb") as f:
                np.save(f, np.zeros(3))  # a bare .npy under the name
        elif damage == "shape":
            np.savez(path, images=np.zeros((5, 5), np.uint8))  # readable, another shape
        else:
            path.write_bytes(damage)
        assert np.array_equal(cached_arrays(path, make, valid)["images"], first["images"])
        assert np.array_equal(np.load(path, allow_pickle=False)["images"], first["images"])  # written back
    assert len(made) == 5 and not list(path.parent.glob(".*.tmp"))


@pytest.mark.skipif(not TYPED_INSTALLED, reason="the DejaVu and Liberation fonts are not installed (.ci/run does)")
def test_typed_digits_join_the_training_images_only(data_dir):
    """--typed-digits: 3,330 typed digits (37 fonts x 3 sizes x 3 slants x 10 digits) after the training images,
    through the server's preprocessing, drawn once into the data cache and the same pixels when drawn again; the
    validation split is unchanged."""
    config = DataConfig(val_size=500, train_size=1000, data_dir=str(data_dir))
    plain_train, plain_val = load_train_val(config, seed=0)
    train, val = load_train_val(dataclasses.replace(config, typed_digits=True), seed=0)
    assert len(train) == 1000 + 3330 and "3,330 typed digits" in train.name
    assert torch.equal(val.images, plain_val.images) and torch.equal(train.images[:1000], plain_train.images)
    typed, labels = train.images[1000:, 0], train.labels[1000:]
    assert typed.dtype == torch.uint8 and np.bincount(labels.numpy()).tolist() == [333] * 10
    assert (typed.amax((1, 2)) == 255).all()  # stretched to a brightest pixel of 255, as preprocessing does
    cached = list((data_dir / "typed").glob("typed-digits-*.npz"))
    assert cached  # drawn once (half a minute), then read from the data cache
    for file in cached:
        file.unlink()
    images, _ = typed_digits(str(data_dir))
    assert np.array_equal(images, typed.numpy())  # drawn again: the same pixels
    assert len(list((data_dir / "typed").glob("typed-digits-*.npz"))) == 1
    assert len({bytes(x) for x in images}) > 3000  # fonts, sizes and slants differ


def test_typed_digits_name_the_missing_fonts(tmp_path):
    with pytest.raises(
        DigitlabError,
        match=r"needs 37 DejaVu and Liberation fonts; 37 are not installed.*apt "
        r"install fonts-dejavu-core fonts-dejavu-extra fonts-liberation, or train with --no-typed",
    ):
        typed_fonts((str(tmp_path),))


def _normalised(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def test_handwriting_manifest_leaves_out_the_benchmark_and_validation_fonts():
    """--handwriting-fonts never trains on a family that the benchmark's font digits (fonts.HANDWRITING) or the
    validation fonts (benchmarks/bench_fonts_val.py) hold: checked by package folder name and, where those fonts are
    installed, by the family name inside each file."""
    import json
    import sys
    from pathlib import Path

    from digitlab.fonts import HANDWRITING, HANDWRITING_MANIFEST, system_fonts

    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from bench_fonts_val import MORE_PACKAGES, PACKAGES

    fonts = json.loads(HANDWRITING_MANIFEST.read_text())["fonts"]
    assert len(fonts) == 266 and len({f["id"] for f in fonts}) == 266
    assert all(len(f["sha256"]) == 64 and f["package"].startswith("@fontsource/") for f in fonts)
    ours = {_normalised(f["family"]) for f in fonts} | {_normalised(f["id"]) for f in fonts}
    held_out = {_normalised(p) for p in (*HANDWRITING, *PACKAGES, *MORE_PACKAGES)}
    assert not [(a, b) for a in ours for b in held_out if a.startswith(b) or b.startswith(a)]
    from PIL import ImageFont

    installed = [p for p in system_fonts() if p.parent.name in (*HANDWRITING, *PACKAGES, *MORE_PACKAGES)]
    families = {_normalised(ImageFont.truetype(str(p), 20).getname()[0]) for p in installed}
    assert not families & ours


def _serve_tarballs(tarballs: dict[str, bytes]):
    """A registry on 127.0.0.1 serving `tarballs` by URL path, in a thread; returns (server, base URL)."""
    import http.server
    import threading

    class Registry(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = tarballs.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _tarball(files: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_handwriting_font_is_fetched_verified_and_never_half_written(tmp_path, monkeypatch):
    """One font file out of its package's tarball from the registry ($npm_config_registry, as npm reads it): written
    only when its SHA-256 matches; a wrong file or a package without it is one clear error and leaves nothing."""
    import hashlib

    from digitlab.fonts import _fetch_font

    font = b"wOF2 a font's bytes"
    entry = {"package": "@fontsource/hand@5.0.0", "file": "files/hand-latin-400-normal.woff2",
             "sha256": hashlib.sha256(font).hexdigest()}  # fmt: skip
    served = {"/@fontsource/hand/-/hand-5.0.0.tgz": _tarball({"package/files/hand-latin-400-normal.woff2": font})}
    server, url = _serve_tarballs(served)
    monkeypatch.setenv("npm_config_registry", url + "/")
    try:
        target = tmp_path / "hand.woff2"
        _fetch_font(entry, target)
        assert target.read_bytes() == font
        target.unlink()
        served["/@fontsource/hand/-/hand-5.0.0.tgz"] = _tarball({"package/files/hand-latin-400-normal.woff2": b"x"})
        with pytest.raises(DigitlabError, match=r"@fontsource/hand@5.0.0's files/hand-latin-400-normal.woff2 has "
                           r"SHA-256 .* expected"):  # fmt: skip
            _fetch_font(entry, target)
        served["/@fontsource/hand/-/hand-5.0.0.tgz"] = _tarball({"package/README.md": b"no fonts"})
        with pytest.raises(DigitlabError, match=r"@fontsource/hand@5.0.0 holds no files/hand-latin-400-normal"):
            _fetch_font(entry, target)
        assert list(tmp_path.iterdir()) == []
    finally:
        server.shutdown()


@pytest.mark.slow
def test_handwriting_fonts_join_the_training_images_only(data_dir):
    """--handwriting-fonts: 7,980 digits (266 families x 3 sizes x 10 digits) fetched from the npm registry, after the
    training images; the validation split unchanged; drawn once into the data cache."""
    from digitlab.fonts import handwritten_digits

    config = DataConfig(val_size=500, train_size=1000, data_dir=str(data_dir))
    plain_train, plain_val = load_train_val(config, seed=0)
    train, val = load_train_val(dataclasses.replace(config, handwriting_fonts=True), seed=0)
    assert len(train) == 1000 + 7980 and "7,980 handwriting-font digits" in train.name
    assert torch.equal(val.images, plain_val.images) and torch.equal(train.images[:1000], plain_train.images)
    drawn, labels = train.images[1000:, 0], train.labels[1000:]
    assert np.bincount(labels.numpy()).tolist() == [798] * 10
    assert (drawn.amax((1, 2)) == 255).all() and len({bytes(x) for x in drawn.numpy()}) > 7500
    assert len(list((data_dir / "fonts" / "handwriting").glob("*.woff2"))) == 266
    images, _ = handwritten_digits(str(data_dir))  # from the cache this time
    assert np.array_equal(images, drawn.numpy())


def test_handwriting_fonts_unreachable_is_one_clear_error(tmp_path, monkeypatch):
    """No registry and no npm client: one line naming the package, both failures and the two ways out."""
    from digitlab.fonts import _fetch_font

    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm
    entry = {"package": "@fontsource/hand@5.0.0", "file": "files/hand-latin-400-normal.woff2", "sha256": "0" * 64}
    with pytest.raises(DigitlabError, match=r"--handwriting-fonts: @fontsource/hand@5.0.0 could not be fetched "
                       r"\(http://127.0.0.1:9/.*npm client is not on PATH.*--no-handwriting-fonts"):  # fmt: skip
        _fetch_font(entry, tmp_path / "hand.woff2")
    assert not (tmp_path / "hand.woff2").exists()
