"""The `digitlab` command line's grammar: every subcommand, built from the shared flags of flags.py, and the
parser (`build_parser`) that cli.py runs.
"""

from __future__ import annotations

import argparse
import sys

from .config import ARCH_NAMES, ENGINE_NAMES, RECIPE_NAMES, RunConfig, ServeConfig
from .flags import (
    add_data_flags,
    add_force_flag,
    add_log_flags,
    add_ray_flags,
    add_reject_flag,
    add_train_flags,
    add_tta_flag,
    recipe_epilog,
)


def add_data_commands(sub) -> None:
    data = sub.add_parser("data", help="fetch datasets, write Kaggle-format CSVs, score submissions")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    fetch = data_sub.add_parser("fetch", help="download and verify a dataset into the cache")
    fetch.add_argument("dataset", nargs="?", default="mnist", choices=["mnist", "fashion-mnist"])
    fetch.add_argument("--data-dir")
    kaggle = data_sub.add_parser("kaggle-csv", help="write Kaggle train.csv, test.csv and answers.csv from MNIST")
    kaggle.add_argument("--out", required=True)
    kaggle.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    kaggle.add_argument("--data-dir")
    kaggle.add_argument("--seed", type=int, default=0)
    add_force_flag(kaggle)
    score = data_sub.add_parser("score", help="accuracy of a submission against an answers file")
    score.add_argument("submission")
    score.add_argument("answers")


def add_train_command(sub) -> None:
    train = sub.add_parser(
        "train",
        help="train a model into a run folder",
        epilog=recipe_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_train_flags(train)
    train.add_argument("--out", help="run folder (default: runs/<date-time>)")
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run where its checkpoint stopped "
        "(a run trained on a file needs --data FILE again)",
    )


def add_distill_command(sub) -> None:
    distill = sub.add_parser(
        "distill",
        help="train a small student on a teacher's probabilities and the labels (default recipe: student)",
        epilog=recipe_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    distill.add_argument("teacher", help="a run folder or an ensemble folder")
    distill.add_argument("--weight", type=float, help="share of the teacher's probabilities in each target "
                         "(default 0.7; the rest is the label)")  # fmt: skip
    distill.add_argument("--consistent", action="store_true", default=None, help="the teacher labels each "
                         "augmented batch as the student sees it (slower: a teacher pass per step)")  # fmt: skip
    distill.add_argument("--out", help="run folder (default: runs/<date-time>)")
    add_train_flags(distill)
    distill.set_defaults(recipe="student")


def add_ensemble_command(sub) -> None:
    ensemble = sub.add_parser(
        "ensemble",
        help="train K members with different seeds and average them",
        epilog=recipe_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ensemble.add_argument("--members", type=int, default=5, help="members to train (default: 5)")
    ensemble.add_argument("--from", dest="assemble", nargs="+", metavar="RUN_DIR", help="no training: an ensemble "
                          "of these finished runs (any recipes, one validation split), copied into --out")  # fmt: skip
    ensemble.add_argument("--ink-widths", type=int, nargs="+", metavar="PIXELS", help="member i sees the digits "
                          "with their ink stretched to the i-th of these widths, cycling (0: as written); e.g. 0 10 "
                          "12 14 16 18 20, Ciresan et al.'s committee: members whose errors differ")  # fmt: skip
    ensemble.add_argument("--member-splits", action="store_true", help="member i holds out its own validation split "
                          "(split seed + i), so each trains on other images; the ensemble's validation accuracy is "
                          "then out of bag. With --from: runs that differ only in --split-seed")  # fmt: skip
    ensemble.add_argument(
        "--tta",
        action="store_true",
        help="predict and serve average over fixed one-pixel shifts too (both are always measured)",
    )
    ensemble.add_argument("--engine", choices=ENGINE_NAMES, default="auto", help="what measures the members and "
                          "the ensemble (default: auto, ONNX Runtime on a CPU where installed, else PyTorch; "
                          "torch-bf16: 5.3x faster on an AMX CPU, a prediction may change)")  # fmt: skip
    ensemble.add_argument(
        "--jobs",
        type=int,
        help="members trained at a time, each in its own process (default: "
        "one per CUDA device when there are several, else 1)",
    )
    ensemble.add_argument(
        "--out",
        default="runs/ensemble",
        help="ensemble folder (re-running reuses members trained with the same config)",
    )
    add_force_flag(ensemble, "retrain members whose folders hold another config")
    add_ray_flags(ensemble)
    add_train_flags(ensemble)


def add_inference_commands(sub) -> None:
    evaluate = sub.add_parser("evaluate", help="accuracy, loss, per-class accuracy and confusion matrix")
    evaluate.add_argument("run", metavar="RUN_DIR")
    add_data_flags(evaluate, default=None, shown="the dataset the model was trained on; mnist for an .onnx file")
    evaluate.add_argument("--split", choices=["train", "test", "val"], default="test", help="split of a named "
                          "dataset, or val: the run's own validation split (a run trained on a file: with --data "
                          "FILE)")  # fmt: skip
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--engine", choices=ENGINE_NAMES, default="auto")
    add_tta_flag(evaluate)
    add_reject_flag(evaluate)

    predict = sub.add_parser("predict", help="write a Kaggle submission (ImageId,Label)")
    predict.add_argument("run", metavar="RUN_DIR")
    predict.add_argument("--input", required=True, help="test.csv, an IDX image file or .npz")
    predict.add_argument("--out", required=True, help="submission CSV to write")
    predict.add_argument("--device", default="auto")
    predict.add_argument(
        "--engine",
        choices=ENGINE_NAMES,
        default="auto",
        help="auto: ONNX Runtime when installed (faster on CPU), else PyTorch; torch-bf16: PyTorch under bf16 "
        "autocast (faster than ONNX Runtime on CPUs with AVX512-BF16, far slower on others)",
    )
    add_tta_flag(predict)
    add_force_flag(predict)
    add_reject_flag(predict)

    export = sub.add_parser(
        "export",
        help="export a run's model to ONNX (pixels 0..255 in, probabilities out), or as a static web page",
    )
    export.add_argument("run", metavar="RUN_DIR")
    export.add_argument(
        "--format",
        choices=["onnx", "web"],
        default="onnx",
        help="onnx: one .onnx file; web: a folder with the drawing page running the model in the browser",
    )
    export.add_argument("--out", help="output file (default: RUN_DIR/model.onnx); for --format web a folder (required)")
    export.add_argument("--no-verify", action="store_true", help="skip the comparison with PyTorch")
    export.add_argument(
        "--int8",
        action="store_true",
        help="static int8 quantisation (default --out RUN_DIR/model.int8.onnx): faster on CPUs with AVX512-VNNI "
        "or AMX, slower without; prints both test accuracies",
    )
    export.add_argument("--ort-package", help="onnxruntime-web npm tarball at hand (default: npm pack, cached)")
    add_force_flag(export)

    serve = sub.add_parser("serve", help="HTTP API and a drawing page for a run's model or an .onnx file")
    serve.add_argument("target", metavar="RUN_DIR|model.onnx")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--engine", choices=ENGINE_NAMES, default="auto")
    add_tta_flag(serve)
    add_reject_flag(serve)
    limits = ServeConfig()
    serve.add_argument("--header-timeout", type=float, default=limits.header_timeout_s, metavar="S",
                       help="seconds a client may take to send a request head, then it is disconnected (default: "
                       "%(default)g)")  # fmt: skip
    serve.add_argument("--body-timeout", type=float, default=limits.body_timeout_s, metavar="S",
                       help="seconds a client may take to send a request body, then 408 (default: %(default)g; "
                       "the largest body, 4 MiB, needs about 280 KB/s to arrive in 15 s)")  # fmt: skip

    calibrate = sub.add_parser(
        "calibrate", help='fit the temperature and the "not a digit" test on a run\'s validation split, and measure'
    )
    calibrate.add_argument("run", metavar="RUN_DIR")


def add_lr_find_command(sub) -> None:
    lr_find = sub.add_parser("lr-find", help="learning-rate range test: loss against an exponentially growing rate, "
                             "a plot and a suggested peak rate", epilog=recipe_epilog(),
                             formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_train_flags(lr_find)
    lr_find.add_argument("--steps", type=int, default=200, help="batches to train (default 200)")
    lr_find.add_argument("--start-lr", type=float, default=1e-6)
    lr_find.add_argument("--end-lr", type=float, default=1.0)
    lr_find.add_argument("--out", default="runs/lr-find", help="folder for lr_find.json and lr_find.png")


def add_lab_command(sub) -> None:
    d = RunConfig()
    lab = sub.add_parser(
        "lab",
        help="measure what dropout, batch norm and augmentation each do",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    lab.add_argument(
        "--strategies",
        default="none,dropout,bn,augment,all",
        help="comma-separated: none, all, dropout, bn, augment, robust (the robust recipe's augmentation options), "
        "or '+'-joined like dropout+bn or all+robust",
    )
    lab.add_argument("--epochs", type=int, default=10)
    lab.add_argument("--train-size", type=int, default=5000, help="training images per run (stratified sub-sample)")
    lab.add_argument(
        "--sizes", help="comma-separated sweep of training sizes, e.g. 1000,5000,all (overrides --train-size)"
    )
    lab.add_argument("--repeats", type=int, default=1, help="seeds per configuration (mean ± std)")
    lab.add_argument("--robustness", type=int, default=0, metavar="N", help="also measure every run on the first N "
                     "images of its validation split under the robustness suite (digitlab[robust])")  # fmt: skip
    lab.add_argument("--robustness-split", choices=["val", "test"], default="val", help="the images --robustness "
                     "measures: the runs' validation splits (to choose on), or the test set (to report)")  # fmt: skip
    lab.add_argument("--batch-size", type=int, default=d.train.batch_size)
    lab.add_argument("--lr", type=float, default=d.train.lr)
    lab.add_argument("--dropout", type=float, default=d.model.dropout, help="dropout probability where it is on")
    lab.add_argument("--val-size", type=int, help="validation images (default: 5,000 or 10 %%, whichever is smaller)")
    lab.add_argument("--seed", type=int, default=d.train.seed)
    lab.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default=d.train.device)
    lab.add_argument("--threads", type=int, help="CPU threads per run (default: torch's, one per core)")
    lab.add_argument("--out", default="labs/lab", help="lab folder")
    add_force_flag(lab, "retrain configurations whose runs hold another config or finished already")
    add_ray_flags(lab)
    add_log_flags(lab)
    add_data_flags(lab)


def add_report_commands(sub) -> None:
    report = sub.add_parser("report", help="write report.html for a run")
    report.add_argument("run", metavar="RUN_DIR")
    report.add_argument("--out", help="HTML file (default: RUN_DIR/report.html)")
    add_force_flag(report)

    robust = sub.add_parser(
        "robustness", help="accuracy under MNIST-C-style corruptions and on handwriting-font digits (robustness.json)"
    )
    robust.add_argument("run", metavar="RUN_DIR", help="a run or ensemble folder, or a checkpoint/.onnx file")
    robust.add_argument("--out", help="JSON file (default: RUN_DIR/robustness.json)")
    robust.add_argument("--engine", choices=ENGINE_NAMES, default="auto")
    robust.add_argument("--seed", type=int, default=0, help="seed of the corruptions (default: 0)")
    robust.add_argument("--limit", type=int, help="only the first N images (default: all)")
    robust.add_argument("--split", choices=["test", "val"], default="test", help="the MNIST test set, or val: "
                        "the run's own validation split, the figures to choose on (robustness_val.json)")  # fmt: skip
    robust.add_argument(
        "--fonts", nargs="+", help="font files to type digits in (default: installed handwriting fonts)"
    )
    add_force_flag(robust)

    summary = sub.add_parser("summary", help="Keras-style model summary")
    summary.add_argument("run", metavar="RUN_DIR", nargs="?", help="summarise a saved model instead")
    summary.add_argument("--recipe", choices=RECIPE_NAMES, default="reference")
    summary.add_argument("--arch", choices=ARCH_NAMES)
    summary.add_argument("--width", type=int)
    summary.add_argument("--kernel", type=int, choices=[3, 5])
    summary.add_argument("--stem", choices=["pool", "stride"])
    summary.add_argument("--ink-width", type=int)
    summary.add_argument("--deskew", action=argparse.BooleanOptionalAction)
    summary.add_argument("--dropout", type=float)
    summary.add_argument("--bn", action=argparse.BooleanOptionalAction)


def version_line() -> str:
    """digitlab's version and the installed torch's, for bug reports (read from the package metadata: no import)."""
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    try:
        torch = version("torch")
    except PackageNotFoundError:
        torch = "not installed"
    return f"digitlab {__version__} (torch {torch}, Python {sys.version.split()[0]})"


class PrintVersion(argparse.Action):
    """--version, worked out only when asked (reading torch's metadata takes ~20 ms, on every command otherwise)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_line())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digitlab", description="Train, diagnose and ship handwritten-digit classifiers."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    parser.add_argument("--version", action=PrintVersion, help="show digitlab's, torch's and Python's versions")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        add_data_commands,
        add_train_command,
        add_distill_command,
        add_ensemble_command,
        add_lr_find_command,
        add_inference_commands,
        add_lab_command,
        add_report_commands,
    ):
        add(sub)
    return parser
