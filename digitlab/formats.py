"""Readers and writers for digit image files: IDX (raw or gzip), Kaggle CSV and .npz.

Every reader returns `(images, labels)`: images as a uint8 array of shape (N, 28, 28), labels as an int64 array of
shape (N,) or None for unlabelled files. Every reader validates what it reads and raises `DataError` naming the file,
the row or byte offset and what was expected, so a bad file never turns into a truncated or reordered dataset.
Writers go through `atomic_write` (files.py): a temporary file in the target folder, fsync, rename, so a failed
write leaves whatever was there before untouched.
"""

from __future__ import annotations

import gzip
import io
import re
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError
from .files import atomic_write

SIDE = 28
PIXELS = SIDE * SIDE
KAGGLE_PIXEL_HEADER = [f"pixel{i}" for i in range(PIXELS)]
IDX_UBYTE = 0x08
IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "short", 0x0C: "int", 0x0D: "float", 0x0E: "double"}
IMAGE_MAGIC = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF", b"BM": "BMP"}
MAX_IDX_ITEMS = 10_000_000  # larger than any digit set; a header claiming more is corrupt, not big


# ---------------------------------------------------------------------------------------------------------- sniffing
def sniff_format(path: Path) -> str:
    """'idx', 'npz' or 'csv' from the first bytes (not the name: downloads get renamed)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"\x1f\x8b":
        return "idx"  # gzip: the only compressed format we read is IDX
    if head[:2] == b"PK":
        return "npz"
    if len(head) == 4 and head[:2] == b"\x00\x00" and head[2] in IDX_TYPES:
        return "idx"  # any IDX element type: read_idx then says which one it found and that it wants bytes
    return "csv"


def read_images(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read any supported file; IDX image files come without labels."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "no such file")
    with open(path, "rb") as f:
        head = f.read(8)
    for magic, kind in IMAGE_MAGIC.items():
        if head.startswith(magic):
            raise DataError(
                path, "byte 0", f"this is a {kind} image; expected a digit data file (IDX, Kaggle CSV or .npz)"
            )
    kind = sniff_format(path)
    if kind == "idx":
        return read_idx(path, expect="images"), None
    if kind == "npz":
        return read_npz(path)
    return read_csv(path)


# ---------------------------------------------------------------------------------------------------------- IDX
def read_capped(stream, limit: int, chunk: int = 1 << 20, advance=None) -> bytes:
    """At most `limit` + 1 bytes from a (possibly decompressing) stream, read in chunks: memory grows only with what
    the stream really yields, never with what a header or a caller claims. `advance(n)` is told of each block."""
    data = bytearray()
    while len(data) <= limit:
        block = stream.read(min(chunk, limit + 1 - len(data)))
        if not block:
            break
        data += block
        if advance is not None:
            advance(len(block))
    return bytes(data)


def _idx_bytes(path: Path, limit: int) -> bytes:
    """The file's (decompressed) content, at most `limit` + 1 bytes: a bogus size can't exhaust memory, and the one
    byte past the limit tells a file that is too long from one that is exact."""
    with open(path, "rb") as raw:
        if raw.read(2) != b"\x1f\x8b":
            raw.seek(0)
            return read_capped(raw, limit)
        raw.seek(0)
        try:
            with gzip.GzipFile(fileobj=raw) as f:
                return read_capped(f, limit)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(path, None, f"gzip stream is corrupt or cut off ({e})") from None


def read_idx(path: str | Path, expect: str) -> np.ndarray:
    """An IDX file of unsigned bytes: `expect` 'images' (N, 28, 28) or 'labels' (N,), each validated."""
    path = Path(path)
    ndim_expected = 3 if expect == "images" else 1
    header_len = 4 + 4 * ndim_expected
    head = _idx_bytes(path, header_len)
    if len(head) < 4:
        raise DataError(path, "byte 0", f"file is {len(head)} bytes, too short for an IDX header")
    if head[0] != 0 or head[1] != 0 or head[2] != IDX_UBYTE:
        found = f"IDX of {IDX_TYPES[head[2]]} values" if head[:2] == b"\0\0" and head[2] in IDX_TYPES else "not IDX"
        raise DataError(
            path,
            "byte 0",
            f"magic number {head[:4].hex()} ({found}), expected 0000080{ndim_expected} (IDX of unsigned bytes)",
        )
    if head[3] != ndim_expected:
        raise DataError(path, "byte 3", f"IDX file has {head[3]} dimensions, expected {ndim_expected} ({expect})")
    if len(head) < header_len:
        raise DataError(path, f"byte {len(head)}", f"header cut off: expected {header_len} header bytes")
    dims = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim_expected)]
    if expect == "images" and dims[1:] != [SIDE, SIDE]:
        raise DataError(path, "byte 8", f"images are {dims[1]}x{dims[2]}, expected {SIDE}x{SIDE}")
    if dims[0] > MAX_IDX_ITEMS:
        raise DataError(path, "byte 4", f"header claims {dims[0]:,} items, more than the {MAX_IDX_ITEMS:,} allowed")
    body_len = int(np.prod(dims))
    data = _idx_bytes(path, header_len + body_len)
    if len(data) < header_len + body_len:
        raise DataError(
            path,
            f"byte {len(data)}",
            f"file ends early: header declares {dims[0]:,} items, expected {header_len + body_len:,} bytes",
        )
    if len(data) > header_len + body_len:
        raise DataError(
            path, f"byte {header_len + body_len}", f"trailing data after the {dims[0]:,} items the header declares"
        )
    array = np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)
    if expect == "labels":
        bad = np.flatnonzero(array > 9)
        if bad.size:
            raise DataError(
                path, f"byte {header_len + bad[0]}", f"label {array[bad[0]]} at item {bad[0]}, expected 0..9"
            )
        return array.astype(np.int64)
    return array.copy()


def read_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path, "images"), read_idx(labels_path, "labels")
    if len(images) != len(labels):
        raise DataError(labels_path, None, f"{len(labels):,} labels for {len(images):,} images in {images_path}")
    return images, labels


# ---------------------------------------------------------------------------------------------------------- CSV
_CELL = re.compile(r"\s*(\d{1,3})\s*")
CSV_BLOCK_ROWS = 2000
MAX_CSV_BYTES = 2 << 30  # 2 GiB: about 1.2 M rows of 784 pixels


def _parse_header(path: Path, line: str) -> bool:
    """Validate the header line; True when it has a leading `label` column."""
    names = [c.strip().strip('"').strip("'").strip() for c in line.split(",")]
    if names and _CELL.fullmatch(names[0]):
        raise DataError(path, "row 1", "no header: expected 'label,pixel0,...,pixel783' or 'pixel0,...,pixel783'")
    expected = (["label"] if names[0] == "label" else []) + KAGGLE_PIXEL_HEADER
    for i, (name, want) in enumerate(zip(names, expected)):
        if name != want:
            shown = f"'{name[:20]}'" if name else "an empty name"
            raise DataError(
                path,
                f"row 1, column {i + 1}",
                f"header has {shown}, expected '{want}' (Kaggle layout: [label,]pixel0..pixel783)",
            )
    if len(names) < len(expected):
        raise DataError(path, "row 1", f"header ends after '{names[-1]}', expected columns up to 'pixel783'")
    if len(names) > len(expected):
        raise DataError(
            path, f"row 1, column {len(expected) + 1}", f"extra header column '{names[-1][:20]}' after 'pixel783'"
        )
    return names[0] == "label"


def _fast_body(lines: list[bytes], ncols: int) -> np.ndarray | None:
    """Parse plain rows (digits and commas only) at C speed; None means 'use the careful parser', which also finds
    and reports any error. numpy's text parser stops quietly at a bad token, so the value count is checked."""
    if any(line.count(b",") != ncols - 1 for line in lines):
        return None
    stream = b",".join(lines)
    if stream.translate(None, b"0123456789,"):
        return None  # other characters (spaces, signs, dots, quotes...)
    try:
        with warnings.catch_warnings():  # older numpy warns where newer raises: "could not be read to its end"
            warnings.simplefilter("ignore", DeprecationWarning)
            values = np.fromstring(stream, dtype=np.int64, sep=",")
    except ValueError:
        return None
    if values.size != len(lines) * ncols:
        return None
    return values.reshape(len(lines), ncols)


def _careful_body(path: Path, lines: list[str], ncols: int, first_row: int) -> np.ndarray:
    """Line-by-line parse with whitespace tolerance and an exact error for the first bad cell; `first_row` is the
    file row number (1-based, the header being row 1) of lines[0]."""
    out = np.empty((len(lines), ncols), dtype=np.int32)
    for r, line in enumerate(lines):
        cells = line.split(",")
        if len(cells) != ncols:
            raise DataError(path, f"row {first_row + r}", f"{len(cells)} columns, expected {ncols} like the header")
        for c, cell in enumerate(cells):
            m = _CELL.fullmatch(cell)
            if m is None:
                shown = cell.strip()[:20].encode("unicode_escape").decode()
                raise DataError(
                    path,
                    f"row {first_row + r}, column {c + 1}",
                    f"'{shown}' is not a pixel value, expected a whole number 0..255"
                    if c or ncols == PIXELS
                    else f"'{shown}' is not a label, expected a digit 0..9",
                )
            out[r, c] = int(m.group(1))
    return out


def read_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """A Kaggle 'Digit Recognizer' CSV: header, then one image a row, with or without a leading label."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise DataError(path, None, f"{size:,} bytes, at most {MAX_CSV_BYTES:,} for a CSV (Kaggle's train.csv: 73 MB)")
    raw = path.read_bytes()
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(path, f"byte {nul}", "NUL byte: this is not a text CSV file")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(path, f"byte {e.start}", "not UTF-8 text: expected a CSV file") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    if not text.strip():
        raise DataError(path, None, "file is empty: expected a header and rows of 784 pixels")
    header, _, body = text.partition("\n")
    has_label = _parse_header(path, header)
    ncols = PIXELS + has_label
    body = "\n".join(line for line in body.split("\n") if line.strip()) if "\n\n" in body else body
    if not body.strip():
        raise DataError(path, "row 2", "only a header: expected at least one row of pixels")
    raw_lines = body.encode("ascii", errors="replace").split(b"\n")  # one byte per character: same lines as body
    blocks = []
    for start in range(0, len(raw_lines), CSV_BLOCK_ROWS):  # blocks: an odd row sends only its block the slow way
        table = _fast_body(raw_lines[start : start + CSV_BLOCK_ROWS], ncols)
        if table is None:
            lines = body.split("\n")[start : start + CSV_BLOCK_ROWS]
            table = _careful_body(path, lines, ncols, first_row=start + 2)
        blocks.append(table)
    table = np.concatenate(blocks)
    pixels = table[:, has_label:]
    bad = np.argwhere(pixels > 255)
    if len(bad):
        r, c = bad[0]
        raise DataError(path, f"row {r + 2}, column {c + 1 + has_label}", f"pixel {pixels[r, c]}, expected 0..255")
    labels = None
    if has_label:
        labels = table[:, 0].astype(np.int64)
        bad = np.flatnonzero(labels > 9)
        if bad.size:
            raise DataError(path, f"row {bad[0] + 2}, column 1", f"label {labels[bad[0]]}, expected 0..9")
    return pixels.astype(np.uint8).reshape(-1, SIDE, SIDE), labels


# ---------------------------------------------------------------------------------------------------------- NPZ
NPZ_KEYS = [("images", "labels"), ("x", "y"), ("x_test", "y_test")]


MAX_NPZ_MEMBERS = 16
MAX_NPZ_ARRAY_BYTES = 2 << 30  # 2 GiB: 2.7 M images of 28x28 bytes, more than any digit set


def _check_npz_members(path: Path) -> None:
    """Before numpy reads anything: few members, and each array's declared size (zip directory and .npy header,
    which must agree) within MAX_NPZ_ARRAY_BYTES, so that neither a zip bomb nor a lying header can exhaust memory."""
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        if len(members) > MAX_NPZ_MEMBERS:
            raise DataError(path, None, f"{len(members)} arrays in the archive, at most {MAX_NPZ_MEMBERS}")
        for member in members:
            if member.file_size > MAX_NPZ_ARRAY_BYTES + 4096:
                raise DataError(path, f"array '{member.filename}'", f"{member.file_size:,} bytes uncompressed, "
                                f"at most {MAX_NPZ_ARRAY_BYTES:,}")  # fmt: skip
            with archive.open(member) as f:
                version = np.lib.format.read_magic(f)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0  # fmt: skip
                shape, _, dtype = read_header(f)  # the header only: no array data is read
                declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if declared > member.file_size:
                    raise DataError(path, f"array '{member.filename}'", f"header declares {declared:,} bytes, the "
                                    f"archive holds {member.file_size:,}")  # fmt: skip


def read_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """A NumPy archive holding integer images (N, 28, 28) or (N, 784) and optionally labels (N,); no pickles."""
    path = Path(path)
    try:
        _check_npz_members(path)
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            pair = next(((x, y) for x, y in NPZ_KEYS if x in keys), None)
            if pair is None:
                raise DataError(
                    path, None, f"keys {sorted(keys)}; expected an image array named one of {[x for x, _ in NPZ_KEYS]}"
                )
            images = archive[pair[0]]
            labels = archive[pair[1]] if pair[1] in keys else None
    except DataError:
        raise
    except Exception as e:  # zipfile, zlib, numpy header errors...: all mean "not a valid archive"
        raise DataError(path, None, f"not a readable .npz archive ({str(e)[:120]})") from None
    if images.dtype.kind not in "ui":
        raise DataError(path, f"array '{pair[0]}'", f"dtype {images.dtype}, expected integer pixels 0..255")
    if images.ndim == 2 and images.shape[1] == PIXELS:
        images = images.reshape(-1, SIDE, SIDE)
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise DataError(path, f"array '{pair[0]}'", f"shape {images.shape}, expected (N, 28, 28) or (N, 784)")
    if images.size and (images.min() < 0 or images.max() > 255):
        raise DataError(path, f"array '{pair[0]}'", f"pixel values {images.min()}..{images.max()}, expected 0..255")
    if labels is not None:
        if labels.dtype.kind not in "ui" or labels.shape != (len(images),):
            raise DataError(
                path,
                f"array '{pair[1]}'",
                f"dtype {labels.dtype} shape {labels.shape}, expected integer labels of shape ({len(images)},)",
            )
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise DataError(path, f"array '{pair[1]}'", f"labels {labels.min()}..{labels.max()}, expected 0..9")
        labels = labels.astype(np.int64)
    return images.astype(np.uint8), labels


# ---------------------------------------------------------------------------------------------------------- writing
_NUMBERS = [str(i) for i in range(256)]


def write_kaggle_csv(path: str | Path, images: np.ndarray, labels: np.ndarray | None = None) -> None:
    """Kaggle layout: header `[label,]pixel0..pixel783`, one flattened image a row."""
    flat = images.reshape(len(images), PIXELS)
    table = flat if labels is None else np.column_stack([labels, flat])
    header = ",".join((["label"] if labels is not None else []) + KAGGLE_PIXEL_HEADER)
    buf = io.StringIO()
    buf.write(header + "\n")
    for row in table.tolist():
        buf.write(",".join(map(_NUMBERS.__getitem__, row)))
        buf.write("\n")
    with atomic_write(path, "w") as f:
        f.write(buf.getvalue())


def write_submission(path: str | Path, predictions: np.ndarray) -> None:
    """Kaggle submission: `ImageId,Label`, ImageId 1-based in input order."""
    lines = ["ImageId,Label"] + [f"{i},{int(p)}" for i, p in enumerate(predictions, start=1)]
    with atomic_write(path, "w") as f:
        f.write("\n".join(lines) + "\n")
