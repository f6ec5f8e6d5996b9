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

from .figures import curves_figure, gap_figure, sizes_figure
from .files import atomic_write
from .report import html_page, img_tag, table_html, write_html

COLUMNS = [  # (key, title, scale, decimals): accuracies in percent (points), losses as they are
    ("train_acc_final", "train acc % (final)", 100, 2),
    ("train_acc_best", "train acc % (best)", 100, 2),
    ("val_acc", "val acc %", 100, 2),
    ("test_acc", "test acc %", 100, 2),
    ("gap_acc", "gap: train - val acc (pts)", 100, 2),
    ("gap_loss", "gap: val - train loss", 1, 3),
    ("best_val_loss_epoch", "best val-loss epoch", 1, 1),
    ("seconds", "time (s)", 1, 1),
]
ROBUSTNESS_COLUMNS = [  # when the lab ran the robustness suite (lab --robustness N)
    ("val_corrupted_acc", "mean corrupted val acc %", 100, 2),  # on the runs' validation splits (the default)
    ("test_corrupted_acc", "mean corrupted test acc %", 100, 2),  # on the test set (--robustness-split test)
    ("fonts_acc", "font digits acc %", 100, 2),
]


def columns(rows: list[dict]) -> list[tuple]:
    return COLUMNS + [column for column in ROBUSTNESS_COLUMNS if column[0] in rows[0]]


def cell(mean: float, std: float, scale: float, decimals: int) -> str:
    text = f"{scale * mean:.{decimals}f}"
    return text if math.isnan(std) else f"{text} ± {scale * std:.{decimals}f}"


def table_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    shown = columns(rows)
    header = ["configuration", "train images"] + [title for _, title, _, _ in shown]
    body = [
        [r["strategy"], r["size_label"]] + [cell(*r[key], scale, decimals) for key, _, scale, decimals in shown]
        for r in rows
    ]
    return header, body


def table_markdown(rows: list[dict]) -> str:
    header, body = table_rows(rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])


def table_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    shown = columns(rows)
    writer.writerow(
        ["configuration", "train_images", "repeats"]
        + [f"{key}_{stat}" for key, *_ in shown for stat in ("mean", "std")]
    )
    for r in rows:
        writer.writerow(
            [r["strategy"], r["size_label"], len(r["runs"])] + [f"{v:.6g}" for key, *_ in shown for v in r[key]]
        )
    return buf.getvalue()


def robustness_note(lab: dict) -> str:
    if not lab.get("robustness"):
        return ""
    images = "validation images (its own split)" if lab.get("robustness_split", "test") == "val" else "test images"
    return (
        f" Each run was also measured on the first {lab['robustness']:,} {images} under every corruption of "
        "<code>digitlab robustness</code> (mean corrupted accuracy) and on digits typed in handwriting fonts."
    )


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
    notes = "".join(f"<p class='note'>{n}</p>" for n in result["notes"]) or (
        "<p>No pair of configurations is within noise of another.</p>"
        if lab["repeats"] > 1
        else "<p>One repeat per configuration: no noise estimate (use --repeats 3).</p>"
    )
    sections = [
        (
            "setup",
            "Setup",
            f"<p>Configurations {', '.join(lab['strategies'])}; training sizes "
            f"{', '.join(r for r in dict.fromkeys(r['size_label'] for r in rows))}; {lab['repeats']} "
            f"repeat(s); {result['base']['train']['epochs']} epochs each. Every configuration of a "
            "repeat shares the seed, the validation split and the training subset; only the strategy "
            "switches differ. Test accuracy is of the model chosen by validation accuracy."
            + robustness_note(lab)
            + "</p>",
        ),
        ("table", "Results", table_html(header, body) + notes),
        ("curves", "Validation curves", img_tag(figures["curves.png"], "validation curves")),
        ("gap", "Generalisation gap", img_tag(figures["gap.png"], "generalisation gap")),
    ]
    if "sizes.png" in figures:
        sections.append(("sizes", "Accuracy against training-set size", img_tag(figures["sizes.png"], "sizes")))
    write_html(out / "report.html", html_page("digitlab overfitting lab", sections))
