"""Font digits of the *validation* kind: handwriting fonts of Debian packages that neither the robustness benchmark
(fonts.HANDWRITING) nor --typed-digits (fonts.TYPED) uses, so that a change aimed at the benchmark's font digits
can be chosen without looking at them (README, Beyond MNIST's test set; the rule: docs/results-2026-12-01f/PLAN.md).

    apt install fonts-bwht fonts-ecolier-court fonts-kaushanscript fonts-klee fonts-yusei-magic fonts-cabinsketch \\
        fonts-joscelyn fonts-havana fonts-leckerli-one
    python benchmarks/bench_fonts_val.py RUN [RUN ...]     # validation-font accuracy and the misses of each model
    python benchmarks/bench_fonts_val.py --typed-probe     # the fast recipe with and without --typed-digits
    python benchmarks/bench_fonts_val.py --handwriting-probe   # ... with and without --handwriting-fonts (2026-12-05)
    apt install fonts-lobster fonts-navilu fonts-aoyagi-kouzan-t fonts-aoyagi-soseki fonts-kiloji \\
        fonts-kouzan-mouhitsu fonts-seto
    python benchmarks/bench_fonts_val.py --more RUN [RUN ...]   # and on a second set of 12 fonts (2026-12-02)

The digits 0-9 at the benchmark's two sizes in the 16 fonts of those packages (320 digits), drawn and preprocessed
exactly as the benchmark's font digits are (fonts.font_digits). `--typed-probe` trains the `fast` recipe (seeds 0
and 1, `--val-size 5000`) with and without `--typed-digits` and measures each on its validation split (the kept model's
figure, the clean one) and on the validation fonts. `--more` measures each model on a second validation set as well:
the 12 fonts of seven more Debian packages with digits (Lobster's bold script, Navilu's italic, the casual Latin
digits of Japanese handwriting and brush fonts, several of which share one design; 240 digits), added on 2026-12-02
because 16 fonts move by a point when one font's style flips. Prints a table and writes
benchmarks/out/bench_fonts_val.json.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from common import OUT, digitlab, machine, write_result

from digitlab.engines import load_engine
from digitlab.fonts import font_digits, system_fonts

# the folders these Debian packages install their fonts into
PACKAGES = ("bwht", "ecolier-court", "kaushanscript", "klee", "yusei-magic", "cabinsketch", "joscelyn", "havana",
            "leckerli-one")  # fmt: skip
MORE_PACKAGES = ("lobster", "Navilu", "aoyagi-kouzan-t", "aoyagi-soseki", "kiloji", "kouzan-mouhitsu", "seto")


def validation_fonts(packages: tuple[str, ...] = PACKAGES) -> tuple[np.ndarray, np.ndarray, list[str]]:
    fonts = [p for p in system_fonts() if p.parent.name in packages]
    if not fonts:
        sys.exit("no validation fonts installed: apt install " + " ".join(f"fonts-{p.lower()}" for p in packages))
    return font_digits(fonts)


def font_accuracy(run: str, images: np.ndarray, labels: np.ndarray, names: list[str]) -> dict:
    probabilities = load_engine(run).predict_proba(images[:, None].astype(np.float32))
    predicted = probabilities.argmax(1)
    misses = [f"{n}: {t} -> {p} ({probabilities[i].max():.2f})"
              for i, (n, t, p) in enumerate(zip(names, labels, predicted)) if t != p]  # fmt: skip
    return {"run": run, "digits": len(labels), "accuracy": float((predicted == labels).mean()), "misses": misses}


def font_probe(flag: str, images, labels, names) -> list[dict]:
    """The `fast` recipe, seeds 0 and 1, without and with `flag` (--typed-digits, --handwriting-fonts)."""
    rows = []
    for added in (False, True):
        for seed in (0, 1):
            run = OUT / "fonts-val" / f"fast-{flag.removeprefix('--') if added else 'plain'}-s{seed}"
            if not (run / "model.safetensors").is_file():
                digitlab("train", "--recipe", "fast", "--seed", str(seed), "--val-size", "5000", "--out", str(run),
                         *([flag] if added else []))  # fmt: skip
            kept = json.loads((run / "metrics.json").read_text())  # the validation-chosen model's figures
            row = font_accuracy(str(run), images, labels, names)
            rows.append({**row, "flag": flag if added else None, "seed": seed, "val_accuracy": kept["val_accuracy"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*")
    parser.add_argument("--typed-probe", action="store_true", help="the fast recipe with and without --typed-digits")
    parser.add_argument("--handwriting-probe", action="store_true", help="... and with --handwriting-fonts")
    parser.add_argument("--more", action="store_true", help="the second validation set too (MORE_PACKAGES)")
    args = parser.parse_args()
    images, labels, names = validation_fonts()
    rows = [font_accuracy(run, images, labels, names) for run in args.runs]
    if args.typed_probe:
        rows += font_probe("--typed-digits", images, labels, names)
    if args.handwriting_probe:
        probe = font_probe("--handwriting-fonts", images, labels, names)
        rows += [row for row in probe if row["flag"] or not args.typed_probe]  # the plain runs once
    print(f"{len(set(names))} validation fonts, {len(labels)} digits\n")
    more_fonts = []
    if args.more:
        more = validation_fonts(MORE_PACKAGES)
        more_fonts = sorted(set(more[2]))
        print(f"more validation fonts: {len(more_fonts)}, {len(more[1])} digits\n")
        for row in rows:
            row["more"] = {k: v for k, v in font_accuracy(row["run"], *more).items() if k != "run"}
    print("| model | validation split | validation fonts | misses | more validation fonts | misses |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        val = f"{100 * row['val_accuracy']:.2f} %" if "val_accuracy" in row else ""
        extra = row.get("more", {})
        more_text = f"{100 * extra['accuracy']:.2f} % | {'; '.join(extra['misses'])}" if extra else " | "
        print(f"| {row['run']} | {val} | {100 * row['accuracy']:.2f} % | {'; '.join(row['misses'])} | {more_text} |")
    result = {"machine": machine(), "fonts": sorted(set(names)), "more_fonts": more_fonts, "rows": rows}
    print(json.dumps(result))
    write_result("bench_fonts_val", result)


if __name__ == "__main__":
    main()
