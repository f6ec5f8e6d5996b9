"""The `digitlab` command: thin subcommands over the library, flags mapped onto the config dataclasses.

Input problems (`DigitlabError`) print one line, `digitlab: error: ...`, and exit with code 2; `--debug` shows the
traceback instead. Ctrl-C exits with code 130.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .config import RECIPE_NAMES, RunConfig, override, recipe
from .console import table
from .errors import DigitlabError, Interrupted

ENGINES = ["auto", "torch", "onnx"]


def add_data_flags(p: argparse.ArgumentParser, default: str | None = "mnist") -> None:
    p.add_argument(
        "--data",
        default=default,
        help="dataset name (mnist, fashion-mnist) or a labelled file/folder: "
        "Kaggle train.csv, .npz, or a folder of IDX files (default: mnist)",
    )
    p.add_argument("--data-dir", help="dataset cache folder (default: $DIGITLAB_DATA_DIR or ~/.cache/digitlab)")


def lr_value(text: str) -> float | str:
    if text == "suggested":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is neither a number nor 'suggested'") from None


def add_log_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log", choices=["none", "tensorboard", "mlflow"], help="experiment tracking (pip install "
                   "'digitlab[track]'): TensorBoard files in the run folder, or an MLflow run")  # fmt: skip
    p.add_argument("--log-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")


AUGMENT_OPTIONS = {  # augmentation fields beyond the seed's: flag -> help (augment.py says how each works)
    "elastic": "elastic distortion: peak displacement in pixels (0: off)",
    "stroke": "probability of a thinner or thicker stroke",
    "blur": "probability of a Gaussian blur",
    "contrast": "probability of faint ink on grey paper",
    "noise": "probability of Gaussian noise",
    "invert": "probability of inverting an image",
    "erase": "probability of random erasing",
    "hflip": "probability of a horizontal flip (clothing; never digits)",
}


def add_train_flags(p: argparse.ArgumentParser) -> None:
    """Flags default to None: the recipe's value stands unless a flag is given."""
    p.add_argument(
        "--recipe",
        choices=RECIPE_NAMES,
        default="reference",
        help="starting settings: reference (the seed's CNN and training), fast (time to accuracy on a "
        "CPU), best (single-model accuracy); the flags below change single fields",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=lr_value, help="peak learning rate, or 'suggested': the one `digitlab lr-find` saved "
                   "in --lr-find DIR")  # fmt: skip
    p.add_argument("--lr-find", metavar="DIR", default="runs/lr-find", help="where --lr suggested reads lr_find.json")
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"])
    p.add_argument("--schedule", choices=["onecycle", "cosine", "constant"])
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--ema", type=float, metavar="DECAY", help="average the weights with this decay per step "
                   "(e.g. 0.999; 0: off); validation, the kept model and the test use the average")  # fmt: skip
    p.add_argument("--arch", choices=["reference", "compact"])
    p.add_argument("--width", type=int, help="compact model: channels of the first convolution")
    p.add_argument("--dropout", type=float, help="dropout probability; 0 turns it off")
    p.add_argument("--bn", action=argparse.BooleanOptionalAction, help="batch normalisation on/off")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, help="data augmentation on/off")
    for name, meaning in AUGMENT_OPTIONS.items():
        p.add_argument(f"--{name}", type=float, help=meaning)
    p.add_argument("--val-size", type=int)
    p.add_argument("--train-size", type=int, help="sub-sample the training images (stratified)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's, one per core)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="auto: bf16 autocast on CUDA, else fp32")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, help="torch.compile the training forward")
    p.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="STEPS",
        help="also checkpoint every STEPS optimizer steps (default: at the end of each epoch)",
    )
    p.add_argument(
        "--trace-test",
        action="store_true",
        default=None,
        help="benchmarks: record the test accuracy of the validation-chosen model after each epoch",
    )
    add_log_flags(p)
    add_data_flags(p, default=None)


def recipe_epilog() -> str:
    """The recipes' values, so that --help shows what a flag left out means."""
    lines = ["recipe values (a flag changes one of them):"]
    for name in RECIPE_NAMES:
        c = recipe(name)
        lines.append(
            f"  {name}: --arch {c.model.arch} --epochs {c.train.epochs} --batch-size {c.train.batch_size} "
            f"--optimizer {c.train.optimizer} --lr {c.train.lr:g} --weight-decay {c.train.weight_decay:g} "
            f"--label-smoothing {c.train.label_smoothing:g} --dropout {c.model.dropout:g} "
            f"--{'' if c.augment.enabled else 'no-'}augment"
        )
    return "\n".join(lines)


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


def add_force_flag(p: argparse.ArgumentParser, what: str = "replace existing output files") -> None:
    p.add_argument("--force", action="store_true", help=what)


def add_reject_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--reject-below",
        metavar="auto|P",
        help='answer "not a digit" for images less typical than a share P of validation digits (auto: 0.005); '
        "needs digitlab calibrate RUN_DIR first",
    )


def add_ray_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", metavar="ADDRESS", help="train each run as a Ray task: local (start Ray here), auto (join "
                   "this machine's cluster) or ray://host:10001; needs pip install 'digitlab[cluster]'")  # fmt: skip
    p.add_argument("--ray-cpus", type=float, default=1.0, help="CPUs per Ray task (its torch threads; default 1)")
    p.add_argument("--ray-gpus", type=float, default=0.0, help="GPUs per Ray task; a fraction shares a GPU")


def ray_options(args: argparse.Namespace):
    from .cluster import RayOptions

    return RayOptions(args.ray, args.ray_cpus, args.ray_gpus) if args.ray else None


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
        help="train a small student on a teacher's probabilities and the labels (default recipe: fast)",
        epilog=recipe_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    distill.add_argument("teacher", help="a run folder or an ensemble folder")
    distill.add_argument("--weight", type=float, help="share of the teacher's probabilities in each target "
                         "(default 0.7; the rest is the label)")  # fmt: skip
    distill.add_argument("--out", help="run folder (default: runs/<date-time>)")
    add_train_flags(distill)
    distill.set_defaults(recipe="fast")


def add_ensemble_command(sub) -> None:
    ensemble = sub.add_parser(
        "ensemble",
        help="train K members with different seeds and average them",
        epilog=recipe_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ensemble.add_argument("--members", type=int, default=5, help="members to train (default: 5)")
    ensemble.add_argument(
        "--tta",
        action="store_true",
        help="predict and serve average over fixed one-pixel shifts too (both are always measured)",
    )
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
    add_data_flags(evaluate)
    evaluate.add_argument("--split", choices=["train", "test"], default="test", help="split of a named dataset")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--engine", choices=ENGINES, default="auto")
    add_reject_flag(evaluate)

    predict = sub.add_parser("predict", help="write a Kaggle submission (ImageId,Label)")
    predict.add_argument("run", metavar="RUN_DIR")
    predict.add_argument("--input", required=True, help="test.csv, an IDX image file or .npz")
    predict.add_argument("--out", required=True, help="submission CSV to write")
    predict.add_argument("--device", default="auto")
    predict.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="auto: ONNX Runtime when installed (faster on CPU), else PyTorch",
    )
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
    export.add_argument("--ort-package", help="onnxruntime-web npm tarball at hand (default: npm pack, cached)")
    add_force_flag(export)

    serve = sub.add_parser("serve", help="HTTP API and a drawing page for a run's model or an .onnx file")
    serve.add_argument("target", metavar="RUN_DIR|model.onnx")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--engine", choices=ENGINES, default="auto")
    add_reject_flag(serve)

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
        help="comma-separated: none, all, dropout, bn, augment, or '+'-joined like dropout+bn",
    )
    lab.add_argument("--epochs", type=int, default=10)
    lab.add_argument("--train-size", type=int, default=5000, help="training images per run (stratified sub-sample)")
    lab.add_argument(
        "--sizes", help="comma-separated sweep of training sizes, e.g. 1000,5000,all (overrides --train-size)"
    )
    lab.add_argument("--repeats", type=int, default=1, help="seeds per configuration (mean ± std)")
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
    robust.add_argument("--engine", choices=ENGINES, default="auto")
    robust.add_argument("--seed", type=int, default=0, help="seed of the corruptions (default: 0)")
    robust.add_argument("--limit", type=int, help="only the first N test images (default: all)")
    robust.add_argument(
        "--fonts", nargs="+", help="font files to type digits in (default: installed handwriting fonts)"
    )
    add_force_flag(robust)

    summary = sub.add_parser("summary", help="Keras-style model summary")
    summary.add_argument("run", metavar="RUN_DIR", nargs="?", help="summarise a saved model instead")
    summary.add_argument("--recipe", choices=RECIPE_NAMES, default="reference")
    summary.add_argument("--arch", choices=["reference", "compact"])
    summary.add_argument("--width", type=int)
    summary.add_argument("--dropout", type=float)
    summary.add_argument("--bn", action=argparse.BooleanOptionalAction)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digitlab", description="Train, diagnose and ship handwritten-digit classifiers."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
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


def train_config(args: argparse.Namespace) -> RunConfig:
    config = flag_config(args)
    if args.lr == "suggested":
        from .lr_find import suggested_lr

        config = override(config, {"train.lr": suggested_lr(args.lr_find, config)})
    return config


def flag_config(args: argparse.Namespace) -> RunConfig:
    """The recipe with every given flag applied (`--lr suggested` aside, which train_config resolves)."""
    return override(
        recipe(args.recipe),
        {
            "train.epochs": args.epochs,
            "train.batch_size": args.batch_size,
            "train.lr": None if args.lr == "suggested" else args.lr,
            "train.optimizer": args.optimizer,
            "train.schedule": args.schedule,
            "train.weight_decay": args.weight_decay,
            "train.label_smoothing": args.label_smoothing,
            "train.seed": args.seed,
            "train.device": args.device,
            "train.threads": args.threads,
            "train.ema": args.ema,
            "train.precision": args.precision,
            "train.compile": args.compile,
            "train.checkpoint_every": args.checkpoint_every,
            "train.trace_test": args.trace_test,
            "train.log": args.log,
            "train.log_uri": args.log_uri,
            "model.arch": args.arch,
            "model.width": args.width,
            "model.dropout": args.dropout,
            "model.batch_norm": args.bn,
            "augment.enabled": args.augment,
            **{f"augment.{name}": getattr(args, name) for name in AUGMENT_OPTIONS},
            "data.val_size": args.val_size,
            "data.train_size": args.train_size,
            "data.source": args.data,
            "data.data_dir": args.data_dir,
        },
    )


def lab_configs(args: argparse.Namespace):
    from .lab import LabConfig

    sizes = (args.sizes or str(args.train_size)).split(",")
    try:
        parsed_sizes = tuple(None if s.strip() == "all" else int(s) for s in sizes)
    except ValueError:
        raise DigitlabError(f"--sizes '{args.sizes}': expected comma-separated integers or 'all'") from None
    lab = LabConfig(
        strategies=tuple(s.strip() for s in args.strategies.split(",")), sizes=parsed_sizes, repeats=args.repeats
    )
    base = override(
        RunConfig(),
        {
            "train.epochs": args.epochs,
            "train.batch_size": args.batch_size,
            "train.lr": args.lr,
            "train.seed": args.seed,
            "train.device": args.device,
            "train.threads": args.threads,
            "train.log": args.log,
            "train.log_uri": args.log_uri,
            "model.dropout": args.dropout,
            "data.val_size": args.val_size,
            "data.source": args.data,
            "data.data_dir": args.data_dir,
        },
    )
    return lab, base


def print_metrics(result: dict) -> None:
    print(
        f"{result['data']} ({result['engine']}): accuracy {result['accuracy']:.2%} "
        f"({result['errors']} errors in {result['n']:,}), loss {result['loss']:.4f}"
    )
    if "rejected" in result:
        print(f"answered 'not a digit': {result['rejected']:,}; accuracy on the rest {result['accuracy_accepted']:.2%}")
    print("per-class accuracy: " + "  ".join(f"{c}: {a:.2%}" for c, a in enumerate(result["per_class_accuracy"])))
    classes = range(len(result["confusion_matrix"]))
    rows = [[str(c), *(str(v) for v in row)] for c, row in zip(classes, result["confusion_matrix"])]
    table("confusion matrix (rows: true label, columns: predicted)", ["", *map(str, classes)], rows)


def cmd_data(args: argparse.Namespace) -> None:
    if args.data_command == "fetch":
        from .datasets import fetch

        print(f"{args.dataset} ready in {fetch(args.dataset, args.data_dir)}")
    elif args.data_command == "kaggle-csv":
        from .kaggle import make_kaggle_csv

        r = make_kaggle_csv(args.out, args.dataset, args.data_dir, args.seed, force=args.force)
        print(f"wrote {r['train_rows']:,}-row train.csv, {r['test_rows']:,}-row test.csv and answers.csv to {r['out']}")
    else:
        from .kaggle import score

        r = score(args.submission, args.answers)
        print(f"accuracy {r['accuracy']:.5f} ({r['errors']} errors in {r['rows']:,} rows)")


def cmd_train(args: argparse.Namespace) -> None:
    from .state import resume_config
    from .train import train

    if args.resume:
        train(resume_config(args.resume, args.data, args.data_dir), resume=args.resume)
    else:
        train(train_config(args), out=args.out)


def cmd_distill(args: argparse.Namespace) -> None:
    from .distill import distill

    if args.data or args.val_size is not None or args.train_size is not None:
        raise DigitlabError("distill: the student trains on its teacher's data and split; drop --data, --val-size "
                            "and --train-size")  # fmt: skip
    config = override(train_config(args), {"distill.weight": args.weight})
    distill(config, args.teacher, args.out)


def cmd_ensemble(args: argparse.Namespace) -> None:
    from .ensemble import train_ensemble

    train_ensemble(train_config(args), args.members, args.out, args.tta, args.jobs, args.force, ray_options(args))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .predict import evaluate_run

    result = evaluate_run(args.run, args.data, args.split, args.device, args.data_dir, args.engine, args.reject_below)
    print(json.dumps(result)) if args.json else print_metrics(result)


def cmd_predict(args: argparse.Namespace) -> None:
    from .predict import predict_file

    r = predict_file(args.run, args.input, args.out, args.device, args.engine, args.force, args.reject_below)
    print(
        f"wrote {r['out']}: {r['images']:,} predictions ({r['engine']}) in {r['total_s']:.2f} s "
        f"(read {r['read_s']:.2f} s, predict {r['predict_s']:.2f} s, write {r['write_s']:.2f} s)"
    )
    if args.reject_below:
        print(f"{r['rejected']:,} images answered 'not a digit' (Label -1)")


def cmd_export(args: argparse.Namespace) -> None:
    from .export import export_onnx
    from .web import export_web

    if args.format == "web":
        r = export_web(args.run, args.out, not args.no_verify, args.force, args.ort_package)
        print(f"wrote {r['out']}/ ({r['bytes']:,} bytes): open {r['out']}/index.html in a browser, or host the folder")
    else:
        r = export_onnx(args.run, args.out, verify=not args.no_verify, force=args.force)
        print(f"wrote {r['out']} ({r['bytes']:,} bytes), checked by the onnx checker")
    if "max_abs_diff" in r:
        print(
            f"ONNX Runtime vs PyTorch on {r['compared_on']}: largest probability difference "
            f"{r['max_abs_diff']:.2e}, same prediction for {r['same_predictions']:.2%}"
        )


def cmd_serve(args: argparse.Namespace) -> None:
    from .serve import serve

    serve(args.target, args.host, args.port, args.engine, args.reject_below)


def cmd_calibrate(args: argparse.Namespace) -> None:
    from .calibration import calibrate

    r = calibrate(args.run)
    print(f"temperature {r['temperature']:.3f} (fitted on {r['fitted_on']})")
    if "auroc" in r:
        print(
            f"expected calibration error on the test set: {r['ece_test_before']:.4f} before, "
            f"{r['ece_test_after']:.4f} after"
        )
        for name, value in r["auroc"].items():
            print(
                f"not a digit: AUROC test digits vs {name} {value:.4f}, "
                f"rejected at auto {r['others_rejected_at_auto'][name]:.2%}"
            )
        print(f"test digits rejected at auto (typicality < 0.005): {r['test_rejected_at_auto']:.2%}")
    print(f"wrote {args.run}/calibration.json and ood.safetensors")


def cmd_lab(args: argparse.Namespace) -> None:
    from .lab import run_lab

    run_lab(*lab_configs(args), out=args.out, force=args.force, ray=ray_options(args))


def cmd_report(args: argparse.Namespace) -> None:
    from .report import run_report

    print(f"wrote {run_report(args.run, args.out, force=args.force)}")


def cmd_robustness(args: argparse.Namespace) -> None:
    from .robustness import robustness

    robustness(args.run, args.out, args.engine, args.seed, args.limit, args.fonts, args.force)


def cmd_summary(args: argparse.Namespace) -> None:
    from .checkpoint import load_checkpoint
    from .models import build_model, summary
    from .runs import model_path

    if args.run:
        model = load_checkpoint(model_path(args.run))[0]
    else:
        model = build_model(
            override(
                recipe(args.recipe),
                {
                    "model.arch": args.arch,
                    "model.width": args.width,
                    "model.dropout": args.dropout,
                    "model.batch_norm": args.bn,
                },
            ).model
        )
    print(summary(model))


def cmd_lr_find(args: argparse.Namespace) -> None:
    from .lr_find import find_lr

    find_lr(flag_config(args), args.out, args.steps, args.start_lr, args.end_lr)


COMMANDS = {
    "lr-find": cmd_lr_find,
    "data": cmd_data,
    "train": cmd_train,
    "distill": cmd_distill,
    "ensemble": cmd_ensemble,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "export": cmd_export,
    "serve": cmd_serve,
    "lab": cmd_lab,
    "report": cmd_report,
    "robustness": cmd_robustness,
    "calibrate": cmd_calibrate,
    "summary": cmd_summary,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
        return 0
    except Interrupted as e:
        print(f"digitlab: {e}", file=sys.stderr)
        return 130
    except DigitlabError as e:
        if args.debug:
            raise
        print(f"digitlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("digitlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (keeps Python's exit-time flush quiet)
        return 0


if __name__ == "__main__":
    sys.exit(main())
