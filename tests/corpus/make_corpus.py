"""Generate the malformed-input corpus: one file (or run folder) per way an input can be broken.

    python tests/corpus/make_corpus.py DIR

Writes every case into DIR and `DIR/cases.json`: for each case the file, the command that must refuse it
(`predict` reads it as --input, `evaluate` as --data, `run` as the RUN_DIR) and the words the error must contain
(the location: a row, column or byte). The corpus is generated rather than committed because some cases are large
(a 30,000-row CSV, a header claiming 2 GB) and because checkpoints must match the installed torch.
"""

from __future__ import annotations

import gzip
import json
import pickle
import sys
from pathlib import Path

import numpy as np

HEADER = ",".join(f"pixel{i}" for i in range(784))


def idx(array: np.ndarray, magic_type: int = 0x08) -> bytes:
    head = bytes([0, 0, magic_type, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return head + array.astype(np.uint8).tobytes()


def csv_rows(images: np.ndarray, labels: np.ndarray | None = None) -> list[str]:
    header = ("label," if labels is not None else "") + HEADER
    rows = [header]
    for i, image in enumerate(images):
        rows.append(",".join(([str(labels[i])] if labels is not None else []) + [str(v) for v in image.ravel()]))
    return rows


def edit(rows: list[str], row: int, column: int, value: str) -> list[str]:
    """Replace the cell at 1-based (row, column)."""
    rows = list(rows)
    cells = rows[row - 1].split(",")
    cells[column - 1] = value
    rows[row - 1] = ",".join(cells)
    return rows


def text(rows: list[str]) -> bytes:
    return ("\n".join(rows) + "\n").encode()


def main(out: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from digitlab.checkpoint import save_checkpoint
    from digitlab.config import RunConfig, override
    from digitlab.models import build_model

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 4, 5])
    plain, labelled = csv_rows(images), csv_rows(images, labels)
    good_idx = idx(images)
    cases: list[dict] = []

    def add(name: str, data: bytes | None, command: str, *words: str) -> None:
        if data is not None:
            (out / name).write_bytes(data)
        cases.append({"file": name, "command": command, "words": list(words)})

    # ---------------------------------------------------------------- IDX (as predict --input)
    add("idx_truncated_body", good_idx[:500], "predict", "byte 500", "ends early")
    add("idx_truncated_header", good_idx[:10], "predict", "byte 10", "header cut off")
    add("idx_magic_float_type", idx(images, 0x0D), "predict", "byte 0", "magic number")
    add("idx_magic_nonzero", b"\x01\x02" + good_idx[2:], "predict")  # not IDX at all: read as text, refused
    add("idx_one_dimension", idx(labels)[:3] + b"\x01" + idx(labels)[4:], "predict", "byte 3", "1 dimensions")
    add("idx_27x28", idx(images[:, :27, :]), "predict", "byte 8", "27x28")
    add("idx_trailing_bytes", good_idx + b"\x00\x01", "predict", f"byte {len(good_idx)}", "trailing data")
    add(
        "idx_claims_2GB",
        good_idx[:4] + (2_740_000).to_bytes(4, "big") + good_idx[8:],
        "predict",
        "ends early",
        "2,740,000 items",
    )
    add(
        "idx_claims_too_many",
        good_idx[:4] + (0xFFFFFFFF).to_bytes(4, "big") + good_idx[8:],
        "predict",
        "byte 4",
        "allowed",
    )
    add("idx_gzip_cut.gz", gzip.compress(good_idx)[:-40], "predict", "gzip")
    corrupt = bytearray(gzip.compress(good_idx))
    corrupt[30:40] = b"\xff" * 10
    add("idx_gzip_corrupt.gz", bytes(corrupt), "predict", "gzip")
    add("idx_gzip_of_truncated.gz", gzip.compress(good_idx[:600]), "predict", "byte 600", "ends early")
    add("idx_gzip_trailing_garbage.gz", gzip.compress(good_idx) + b"garbage!", "predict", "gzip")
    folder = out / "idx_count_mismatch"
    folder.mkdir(exist_ok=True)
    (folder / "train-images-idx3-ubyte").write_bytes(good_idx)
    (folder / "train-labels-idx1-ubyte").write_bytes(idx(labels[:5]))
    add("idx_count_mismatch", None, "evaluate-train", "5 labels for 6 images")
    folder = out / "idx_label_10"
    folder.mkdir(exist_ok=True)
    (folder / "t10k-images-idx3-ubyte").write_bytes(good_idx)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx(np.array([0, 1, 10, 3, 4, 5])))
    add("idx_label_10", None, "evaluate", "byte 10", "label 10")

    # ---------------------------------------------------------------- CSV
    add(
        "csv_missing_column.csv",
        text(plain[:3] + [plain[3].rsplit(",", 1)[0]] + plain[4:]),
        "predict",
        "row 4",
        "783 columns, expected 784",
    )
    add("csv_extra_column.csv", text(plain[:2] + [plain[2] + ",0"] + plain[3:]), "predict", "row 3", "785 columns")
    add("csv_non_numeric.csv", text(edit(plain, 3, 10, "abc")), "predict", "row 3, column 10", "'abc'")
    add("csv_pixel_256.csv", text(edit(plain, 4, 100, "256")), "predict", "row 4, column 100", "pixel 256")
    add("csv_pixel_minus_1.csv", text(edit(plain, 2, 1, "-1")), "predict", "row 2, column 1", "'-1'")
    add("csv_float_pixel.csv", text(edit(plain, 5, 7, "12.5")), "predict", "row 5, column 7", "'12.5'")
    add("csv_exponent_pixel.csv", text(edit(plain, 5, 7, "1e2")), "predict", "row 5, column 7", "'1e2'")
    add("csv_empty_cell.csv", text(edit(plain, 6, 300, "")), "predict", "row 6, column 300")
    add("csv_label_10.csv", text(edit(labelled, 3, 1, "10")), "evaluate", "row 3, column 1", "label 10")
    add("csv_label_minus_1.csv", text(edit(labelled, 2, 1, "-1")), "evaluate", "row 2, column 1", "not a label")
    add("csv_label_float.csv", text(edit(labelled, 2, 1, "3.0")), "evaluate", "row 2, column 1", "'3.0'")
    add("csv_empty.csv", b"", "predict", "empty")
    add("csv_only_whitespace.csv", b"\n \r\n\t\n", "predict", "empty")
    add("csv_header_only.csv", text(plain[:1]), "predict", "row 2", "only a header")
    add(
        "csv_header_mismatch.csv",
        text([plain[0].replace("pixel5,", "pixel_5,")] + plain[1:]),
        "predict",
        "row 1, column 6",
        "'pixel_5'",
    )
    add("csv_header_missing.csv", text(plain[1:]), "predict", "row 1", "no header")
    add("csv_header_short.csv", text([plain[0].rsplit(",", 1)[0]] + plain[1:]), "predict", "row 1", "header ends")
    add("csv_header_extra.csv", text([plain[0] + ",extra"] + plain[1:]), "predict", "row 1, column 785", "extra")
    add(
        "csv_mixed_row_lengths.csv",
        text(plain[:2] + [plain[2] + ",1,2"] + [plain[3].rsplit(",", 2)[0]]),
        "predict",
        "row 3",
        "786 columns",
    )
    add("csv_nul_bytes.csv", text(plain).replace(b"0,", b"0\x00,", 1), "predict", "byte", "NUL")
    add("csv_is_png.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), "predict", "byte 0", "PNG image")
    add("csv_latin1.csv", text(plain).replace(b"pixel0", b"pix\xe9l0", 1), "predict", "byte 3", "not UTF-8")
    add("csv_semicolons.csv", text([r.replace(",", ";") for r in plain]), "predict", "row 1")
    add("csv_no_labels_for_evaluate.csv", text(plain), "evaluate", "has no labels")
    big = csv_rows(np.zeros((30_000, 28, 28), dtype=np.uint8))
    add("csv_late_error_30000_rows.csv", text(edit(big, 29_999, 784, "x")), "predict", "row 29999, column 784")

    # ---------------------------------------------------------------- NPZ
    def npz(name: str, command: str, *words: str, **arrays) -> None:
        np.savez(out / name, **arrays)
        add(name, None, command, *words)

    npz("npz_wrong_keys.npz", "predict", "keys", pixels=images)
    npz("npz_float_dtype.npz", "predict", "float32", images=images.astype(np.float32))
    npz("npz_wrong_shape.npz", "predict", "shape (6, 28, 20)", images=images[:, :, :20])
    npz("npz_pixel_300.npz", "predict", "0..300", images=np.where(images > 250, 300, images.astype(np.int16)))
    npz("npz_labels_length.npz", "evaluate", "shape (5,)", images=images, labels=labels[:5])
    npz("npz_label_11.npz", "evaluate", "labels 0..11", images=images, labels=np.array([0, 1, 2, 3, 4, 11]))
    npz("npz_object_array.npz", "predict", images=np.array([{"a": 1}], dtype=object))
    add("npz_not_a_zip.npz", b"PK\x03\x04" + bytes(100), "predict", "not a readable")

    # ---------------------------------------------------------------- run folders and checkpoints (as RUN_DIR)
    def run(name: str, *words: str, blob: bytes | None = None) -> Path:
        folder = out / name
        folder.mkdir(exist_ok=True)
        if blob is not None:
            (folder / "model.safetensors").write_bytes(blob)
        add(name, None, "run", *words)
        return folder

    run("run_empty_folder", "no model.safetensors")
    run("run_pickle_checkpoint", "not a digitlab safetensors", blob=pickle.dumps({"weights": [1, 2, 3]}))
    torch.manual_seed(0)
    model = build_model(RunConfig().model)
    save_checkpoint(out / "good.safetensors", model, RunConfig())
    good = (out / "good.safetensors").read_bytes()
    (out / "good.safetensors").unlink()
    run("run_truncated_checkpoint", "not a digitlab safetensors", blob=good[: len(good) // 2])
    run("run_zero_byte_checkpoint", "not a digitlab safetensors", blob=b"")
    folder = run("run_tensors_do_not_match", "do not match")
    save_checkpoint(folder / "model.safetensors", model, override(RunConfig(), {"model.batch_norm": False}))
    folder = run("run_plain_safetensors", "not a digitlab safetensors")
    save_file({"w": torch.zeros(3)}, str(folder / "model.safetensors"))
    header_len = int.from_bytes(good[:8], "little")
    header = json.loads(good[8 : 8 + header_len])
    meta = json.loads(header["__metadata__"]["digitlab"])
    meta["config"]["train"]["epochz"] = 3
    header["__metadata__"]["digitlab"] = json.dumps(meta)
    new_header = json.dumps(header).encode()
    new_header += b" " * (-len(new_header) % 8)
    run(
        "run_config_unknown_field",
        "epochz",
        blob=len(new_header).to_bytes(8, "little") + new_header + good[8 + header_len :],
    )
    weights = bytearray(good)
    first_tensor = next(v for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32")
    start = 8 + header_len + first_tensor["data_offsets"][0]
    weights[start : start + 4] = b"\x00\x00\xc0\x7f"  # NaN: a corrupted weight
    run("run_nan_weights", "not finite", blob=bytes(weights))
    (out / "cases.json").write_text(json.dumps(cases, indent=1))
    print(f"{len(cases)} cases in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
