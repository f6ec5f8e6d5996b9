"""The overfitting lab's outputs: its table (Markdown, CSV), its plots, and its self-contained report.html.

Plots: validation accuracy and loss per epoch of every configuration overlaid (curves.png), the generalisation gap
per epoch (gap.png: clean training accuracy minus validation accuracy), and, for a sweep over training-set sizes,
test accuracy against size per configuration (sizes.png). Curves are the mean over repeats.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .formats import atomic_write  # noqa: E402
from .report import figure_png, html_page, img_tag, table_html, write_html  # noqa: E402

COLUMNS = [  # (key, title, scale, decimals): accuracies in percent (points), losses as they are
    ("train_acc_final", "train acc % (final)", 100, 2), ("train_acc_best", "train acc % (best)", 100, 2),
    ("val_acc", "val acc %", 100, 2), ("test_acc", "test acc %", 100, 2),
    ("gap_acc", "gap: train - val acc (pts)", 100, 2), ("gap_loss", "gap: val - train loss", 1, 3),
    ("best_val_loss_epoch", "best val-loss epoch", 1, 1), ("seconds", "time (s)", 1, 1)]


def cell(mean: float, std: float, scale: float, decimals: int) -> str:
    text = f"{scale * mean:.{decimals}f}"
    return text if math.isnan(std) else f"{text} ± {scale * std:.{decimals}f}"


def table_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["configuration", "train images"] + [title for _, title, _, _ in COLUMNS]
    body = [[r["strategy"], r["size_label"]] + [cell(*r[key], scale, decimals) for key, _, scale, decimals in COLUMNS]
            for r in rows]
    return header, body


def table_markdown(rows: list[dict]) -> str:
    header, body = table_rows(rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])


def table_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["configuration", "train_images", "repeats"] +
                    [f"{key}_{stat}" for key, *_ in COLUMNS for stat in ("mean", "std")])
    for r in rows:
        writer.writerow([r["strategy"], r["size_label"], len(r["runs"])] +
                        [f"{v:.6g}" for key, *_ in COLUMNS for v in r[key]])
    return buf.getvalue()


def mean_curve(histories: list[list[dict]], key) -> np.ndarray:
    """Per-epoch mean over repeats of key(h) for each epoch record h."""
    return np.mean([[key(h) for h in history] for history in histories], axis=0)


def curves_figure(curves: dict) -> bytes:
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for (name, size), histories in curves.items():
        label = name if len({s for _, s in curves}) == 1 else f"{name}, n={size}"
        epochs = [h["epoch"] for h in histories[0]]
        ax_acc.plot(epochs, 100 * mean_curve(histories, lambda h: h["val_accuracy"]), "o-", ms=3, label=label)
        ax_loss.plot(epochs, mean_curve(histories, lambda h: h["val_loss"]), "o-", ms=3, label=label)
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy (%)", title="Validation accuracy")
    ax_loss.set(xlabel="epoch", ylabel="validation cross-entropy", title="Validation loss", yscale="log")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return figure_png(fig)


def gap_figure(curves: dict) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 4))
    for (name, size), histories in curves.items():
        label = name if len({s for _, s in curves}) == 1 else f"{name}, n={size}"
        epochs = [h["epoch"] for h in histories[0]]
        gap = mean_curve(histories, lambda h: h["train_eval_accuracy"] - h["val_accuracy"])
        ax.plot(epochs, 100 * gap, "o-", ms=3, label=label)
    ax.axhline(0, color="black", lw=0.8)
    ax.set(xlabel="epoch", ylabel="train - validation accuracy (points)",
           title="Generalisation gap (clean training set, eval mode)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_png(fig)


def sizes_figure(rows: list[dict]) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in dict.fromkeys(r["strategy"] for r in rows):
        mine = [r for r in rows if r["strategy"] == name]
        sizes = [r["train_images"][0] for r in mine]
        means = [100 * r["test_acc"][0] for r in mine]
        stds = [0 if math.isnan(r["test_acc"][1]) else 100 * r["test_acc"][1] for r in mine]
        ax.errorbar(sizes, means, yerr=stds, marker="o", capsize=3, label=name)
    ax.set(xscale="log", xlabel="training images", ylabel="test accuracy (%)", title="Accuracy against data size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return figure_png(fig)


def write_lab_outputs(out: Path, result: dict, curves: dict) -> None:
    rows = result["rows"]
    with atomic_write(out / "table.md", "w") as f:
        f.write(table_markdown(rows) + "\n")
    with atomic_write(out / "table.csv", "w") as f:
        f.write(table_csv(rows))
    figures = {"curves.png": curves_figure(curves), "gap.png": gap_figure(curves)}
    if len({r["size_label"] for r in rows}) > 1:
        figures["sizes.png"] = sizes_figure(rows)
    for name, png in figures.items():
        with atomic_write(out / name) as f:
            f.write(png)
    header, body = table_rows(rows)
    lab = result["lab"]
    notes = "".join(f"<p class='note'>{n}</p>" for n in result["notes"]) or \
        ("<p>No pair of configurations is within noise of another.</p>" if lab["repeats"] > 1 else
         "<p>One repeat per configuration: no noise estimate (use --repeats 3).</p>")
    sections = [
        ("setup", "Setup", f"<p>Configurations {', '.join(lab['strategies'])}; training sizes "
                           f"{', '.join(r for r in dict.fromkeys(r['size_label'] for r in rows))}; {lab['repeats']} "
                           f"repeat(s); {result['base']['train']['epochs']} epochs each. Every configuration of a "
                           "repeat shares the seed, the validation split and the training subset; only the strategy "
                           "switches differ. Test accuracy is of the model chosen by validation accuracy.</p>"),
        ("table", "Results", table_html(header, body) + notes),
        ("curves", "Validation curves", img_tag(figures["curves.png"], "validation curves")),
        ("gap", "Generalisation gap", img_tag(figures["gap.png"], "generalisation gap")),
    ]
    if "sizes.png" in figures:
        sections.append(("sizes", "Accuracy against training-set size", img_tag(figures["sizes.png"], "sizes")))
    write_html(out / "report.html", html_page("digitlab overfitting lab", sections))
