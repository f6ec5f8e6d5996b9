"""Every malformed input in the corpus, through the CLI: exit code 2, one message naming the file and the place,
no traceback, and no output file created or overwritten."""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from digitlab.cli import main

HERE = Path(__file__).parent
CASES = None


def corpus_cases() -> list[dict]:
    """The case list, generated once per session into a temporary folder (the corpus script is the source)."""
    global CASES
    if CASES is None:
        folder = Path(tempfile.mkdtemp(prefix="digitlab-corpus-"))
        atexit.register(shutil.rmtree, folder, True)  # made at collection, before any fixture could own it
        subprocess.run(
            [sys.executable, str(HERE / "corpus" / "make_corpus.py"), str(folder)], check=True, capture_output=True
        )
        CASES = [{**case, "path": folder / case["file"]} for case in json.loads((folder / "cases.json").read_text())]
    return CASES


def test_corpus_is_big_enough():
    assert len(corpus_cases()) >= 40


@pytest.mark.parametrize("case", corpus_cases(), ids=lambda c: c["file"])
def test_malformed_input_is_refused_cleanly(case, trained_run, tmp_path, capsys):
    out = tmp_path / "submission.csv"
    path = str(case["path"])
    argv = {
        "predict": ["predict", str(trained_run), "--input", path, "--out", str(out)],
        "evaluate": ["evaluate", str(trained_run), "--data", path],
        "evaluate-train": ["evaluate", str(trained_run), "--data", path, "--split", "train"],
        "run": ["evaluate", path],
    }[case["command"]]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("digitlab: error: "), captured.err
    assert "Traceback" not in captured.err
    assert case["file"].split("/")[0] in lines[0], f"message does not name the file: {lines[0]}"
    for words in case["words"]:
        assert words in lines[0], f"expected {words!r} in: {lines[0]}"
    assert not out.exists()


def test_existing_output_survives_a_bad_input(trained_run, tmp_path, capsys):
    out = tmp_path / "submission.csv"
    out.write_text("ImageId,Label\n1,7\n")
    bad = next(c for c in corpus_cases() if c["file"] == "csv_pixel_256.csv")
    assert main(["predict", str(trained_run), "--input", str(bad["path"]), "--out", str(out), "--force"]) == 2
    assert out.read_text() == "ImageId,Label\n1,7\n"
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]
