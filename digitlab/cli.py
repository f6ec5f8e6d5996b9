"""The `digitlab` command: thin subcommands over the library, flags mapped onto the config dataclasses.

The grammar (subcommands, flags, help) is commands.py's, built from flags.py's shared flags. Input problems
(`DigitlabError`) print one line, `digitlab: error: ...`, and exit with code 2; `--debug` shows the traceback
instead. Ctrl-C exits with code 130.
"""

from __future__ import annotations

import argparse
import os
import sys

from .commands import build_parser
from .config import RunConfig, override, recipe
from .console import table
from .errors import DigitlabError, Interrupted
from .flags import AUGMENT_OPTIONS, ray_options


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
            "model.kernel": args.kernel,
            "model.stem": args.stem,
            "model.ink_width": args.ink_width,
            "model.deskew": args.deskew,
            "model.dropout": args.dropout,
            "model.batch_norm": args.bn,
            "augment.enabled": args.augment,
            **{f"augment.{name}": getattr(args, name) for name in AUGMENT_OPTIONS},
            "data.val_size": args.val_size,
            "data.train_size": args.train_size,
            "data.split_seed": args.split_seed,
            "data.typed_digits": args.typed_digits,
            "data.handwriting_fonts": args.handwriting_fonts,
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
        strategies=tuple(s.strip() for s in args.strategies.split(",")),
        sizes=parsed_sizes,
        repeats=args.repeats,
        robustness=args.robustness,
        robustness_split=args.robustness_split,
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
        f"{result['data']} ({result['engine']}{', TTA' if result.get('tta') else ''}): "
        f"accuracy {result['accuracy']:.2%} "
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

    taught = (args.train_size, args.split_seed, args.typed_digits, args.handwriting_fonts)
    if args.data or args.val_size not in (None, 0) or any(flag is not None for flag in taught):
        raise DigitlabError("distill: the student trains on its teacher's data and split; drop --data, --val-size "
                            "(but for 0: no validation, all images), --train-size, --split-seed, "
                            "--typed-digits and --handwriting-fonts")  # fmt: skip
    config = override(train_config(args), {"distill.weight": args.weight, "distill.consistent": args.consistent})
    distill(config, args.teacher, args.out)


def cmd_ensemble(args: argparse.Namespace) -> None:
    from .ensemble import assemble_ensemble, train_ensemble

    if args.assemble:
        if (
            args.recipe != "reference"
            or flag_config(args) != recipe("reference")
            or args.ray
            or args.jobs
            or args.ink_widths
        ):
            raise DigitlabError("ensemble --from assembles finished runs: training flags and --recipe do not apply")
        assemble_ensemble(args.assemble, args.out, args.tta, args.force, member_splits=args.member_splits,
                          engine=args.engine)  # fmt: skip
        return

    ink_widths = tuple(args.ink_widths or ())
    train_ensemble(train_config(args), args.members, args.out, args.tta, args.jobs, args.force, ray_options(args),
                   ink_widths=ink_widths, member_splits=args.member_splits, engine=args.engine)  # fmt: skip


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .predict import evaluate_run
    from .runs import json_text

    result = evaluate_run(
        args.run, args.data, args.split, args.device, args.data_dir, args.engine, args.reject_below, args.tta
    )
    print(json_text(result, indent=None)) if args.json else print_metrics(result)


def cmd_predict(args: argparse.Namespace) -> None:
    from .predict import predict_file

    r = predict_file(args.run, args.input, args.out, args.device, args.engine, args.force, args.reject_below, args.tta)
    print(
        f"wrote {r['out']}: {r['images']:,} predictions ({r['engine']}) in {r['total_s']:.2f} s "
        f"(read {r['read_s']:.2f} s, predict {r['predict_s']:.2f} s, write {r['write_s']:.2f} s)"
    )
    if args.reject_below:
        print(f"{r['rejected']:,} images answered 'not a digit' (Label -1)")


def cmd_export(args: argparse.Namespace) -> None:
    from .export import export_onnx
    from .web import export_web

    if args.format == "web" and args.int8:
        raise DigitlabError("--int8 writes an .onnx file for ONNX Runtime: use it with --format onnx")
    if args.format == "web":
        r = export_web(args.run, args.out, not args.no_verify, args.force, args.ort_package)
        print(f"wrote {r['out']}/ ({r['bytes']:,} bytes): open {r['out']}/index.html in a browser, or host the folder")
    else:
        r = export_onnx(args.run, args.out, verify=not args.no_verify, force=args.force, int8=args.int8)
        print(f"wrote {r['out']} ({r['bytes']:,} bytes{', int8' if r['int8'] else ''}), checked by the onnx checker")
    if "max_abs_diff" in r:
        print(
            f"ONNX Runtime vs PyTorch on {r['compared_on']}: largest probability difference "
            f"{r['max_abs_diff']:.2e}, same prediction for {r['same_predictions']:.2%}"
        )
    if "onnx_accuracy" in r:
        print(f"test accuracy: ONNX Runtime {r['onnx_accuracy']:.2%}, PyTorch {r['torch_accuracy']:.2%}")


def cmd_serve(args: argparse.Namespace) -> None:
    from .config import ServeConfig
    from .serve import serve

    limits = ServeConfig(header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout)
    serve(args.target, args.host, args.port, args.engine, args.reject_below, args.tta, limits)


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

    robustness(args.run, args.out, args.engine, args.seed, args.limit, args.fonts, args.force, args.split)


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
                    "model.kernel": args.kernel,
                    "model.stem": args.stem,
                    "model.ink_width": args.ink_width,
                    "model.deskew": args.deskew,
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
