"""The flags that several `digitlab` subcommands share, in argparse: data, training (one per config field), logging,
--force, --reject-below, --tta and Ray's. commands.py builds each subcommand from them.

Flags default to None so that a recipe's value stands unless a flag is given; cli.py maps the parsed flags onto the
config dataclasses and runs the command.
"""

from __future__ import annotations

import argparse

from .config import ARCH_NAMES, RECIPE_NAMES, recipe


def add_data_flags(p: argparse.ArgumentParser, default: str | None = "mnist", shown: str = "mnist") -> None:
    p.add_argument(
        "--data",
        default=default,
        help="dataset name (mnist, fashion-mnist) or a labelled file/folder: "
        f"Kaggle train.csv, .npz, or a folder of IDX files (default: {shown})",
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


AUGMENT_OPTIONS = {  # augmentation fields: flag -> help (augment.py says how each works)
    "rotation_deg": "largest rotation, degrees (the seed: 8)",
    "shift": "largest shift, a fraction of the side (the seed: 0.08)",
    "shear_rad": "largest shear, radians (the seed: 0.3)",
    "zoom": "largest zoom, a fraction (the seed: 0.08: scale in [0.92, 1.08])",
    "elastic": "elastic distortion: peak displacement in pixels (0: off)",
    "stroke": "probability of a thinner or thicker stroke",
    "blur": "probability of a Gaussian blur",
    "contrast": "probability of faint ink on grey paper",
    "noise": "probability of Gaussian noise",
    "invert": "probability of inverting an image",
    "erase": "probability of random erasing",
    "hflip": "probability of a horizontal flip (clothing; never digits)",
    "outline": "probability of hollow (outline-only) strokes",
    "lines": "probability of a solid or dashed ink line across the paper",
}
AUGMENT_FLAGS = {"rotation_deg": "rotation", "shear_rad": "shear"}  # flags whose name leaves the field's unit out


def add_train_flags(p: argparse.ArgumentParser) -> None:
    """Flags default to None: the recipe's value stands unless a flag is given."""
    p.add_argument(
        "--recipe",
        choices=RECIPE_NAMES,
        default="reference",
        help="starting settings: reference (the seed's CNN and training), fast (time to accuracy on a "
        "CPU), best (single-model accuracy), robust (unlike MNIST's scans), fashion (Fashion-MNIST), gpu (best at "
        "GPU batch sizes, compiled); the flags below change single fields",
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
    p.add_argument("--arch", choices=ARCH_NAMES)
    p.add_argument("--width", type=int, help="compact, vgg and deep models: channels of the first convolution")
    p.add_argument("--kernel", type=int, choices=[3, 5], help="vgg and deep models: the convolutions' kernel side")
    p.add_argument("--stem", choices=["pool", "stride"], help="compact model: first convolution then max-pooling "
                   "(pool), or strided (stride: fewer passes, 1.3-1.4x faster "
                   "inference on an AVX-512 CPU)")  # fmt: skip
    p.add_argument("--ink-width", type=int, metavar="PIXELS", help="first stretch or squeeze each digit's ink to "
                   "this many pixels wide, height kept (10-20: committee members whose errors differ; "
                   "0: off)")  # fmt: skip
    p.add_argument("--deskew", action=argparse.BooleanOptionalAction, help="first shear each digit upright (its "
                   "ink's slant to 0)")  # fmt: skip
    p.add_argument("--dropout", type=float, help="dropout probability; 0 turns it off")
    p.add_argument("--bn", action=argparse.BooleanOptionalAction, help="batch normalisation on/off")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, help="data augmentation on/off")
    for name, meaning in AUGMENT_OPTIONS.items():
        p.add_argument(f"--{AUGMENT_FLAGS.get(name, name)}", dest=name, type=float, help=meaning)
    p.add_argument("--val-size", type=int)
    p.add_argument("--train-size", type=int, help="sub-sample the training images (stratified)")
    p.add_argument("--typed-digits", action=argparse.BooleanOptionalAction, help="add 3,330 digits typed in DejaVu and "
                   "Liberation fonts to the training images (pillow and the fonts needed)")  # fmt: skip
    p.add_argument("--handwriting-fonts", action=argparse.BooleanOptionalAction, help="add 7,980 digits written "
                   "in 266 Google Fonts handwriting families to the training images (fetched once from the npm "
                   "registry; pillow needed)")  # fmt: skip
    p.add_argument("--seed", type=int)
    p.add_argument("--split-seed", type=int, help="seed of the validation split and sub-sample (default: --seed); "
                   "runs that share it can be ensembled with `ensemble --from`")  # fmt: skip
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's, one per core)")
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        help="auto: bf16 autocast on CUDA, and on a CPU with bf16 instructions where a few timed steps find it "
        ">= 1.25x as fast as fp32 (the answer is cached); else fp32",
    )
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
            f"--{'' if c.augment.enabled else 'no-'}augment" + (" --compile" if c.train.compile else "")
        )
    return "\n".join(lines)


def add_force_flag(p: argparse.ArgumentParser, what: str = "replace existing output files") -> None:
    p.add_argument("--force", action="store_true", help=what)


def add_reject_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--reject-below",
        metavar="auto|P",
        help='answer "not a digit" for images less typical than a share P of validation digits (auto: 0.005); '
        "needs digitlab calibrate RUN_DIR first",
    )


def add_tta_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tta", action="store_true", default=None, help="average over test-time views: one-pixel "
                   "shifts (and mirrors for a model trained with --hflip); default: an ensemble's switch, "
                   "else off")  # fmt: skip


def add_ray_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", metavar="ADDRESS", help="train each run as a Ray task: local (start Ray here), auto (join "
                   "this machine's cluster) or ray://host:10001; needs pip install 'digitlab[cluster]'")  # fmt: skip
    p.add_argument("--ray-cpus", type=float, default=1.0, help="CPUs per Ray task (its torch threads; default 1)")
    p.add_argument("--ray-gpus", type=float, default=0.0, help="GPUs per Ray task; a fraction shares a GPU")


def ray_options(args: argparse.Namespace):
    from .cluster import RayOptions

    return RayOptions(args.ray, args.ray_cpus, args.ray_gpus) if args.ray else None
