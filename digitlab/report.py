"""Self-contained HTML reports: one file, images embedded as base64 PNG, no scripts or external links.

`html_page` assembles sections; `figure_png` renders a matplotlib figure to bytes. `run_report` writes `report.html`
for one run: model summary, config, learning curves, confusion matrix, per-class accuracy, the most confidently wrong
test images, and an augmentation preview (the same digits under several random augmentations). The lab's report
(lab.py) is built from the same pieces.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .augment import augment_batch, make_generator  # noqa: E402
from .checkpoint import load_checkpoint  # noqa: E402
from .data import load_source, load_test, load_train_val  # noqa: E402
from .evaluate import metrics_from_logits, model_path, predict_logits  # noqa: E402
from .formats import atomic_write  # noqa: E402
from .models import summary  # noqa: E402

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; } .note { background: #fff8e0; padding: 0.6em 1em; border-left: 4px solid #e0b000; }
"""


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def img_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def table_html(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_page(title: str, sections: list[tuple[str, str, str]]) -> str:
    """sections: (id, heading, inner HTML)."""
    parts = [f'<section id="{sid}"><h2>{html.escape(heading)}</h2>{inner}</section>'
             for sid, heading, inner in sections]
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(parts)}</body></html>")


def write_html(path: str | Path, page: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(page)


# ---------------------------------------------------------------------------------------------------------- figures
def confusion_figure(confusion: list[list[int]]) -> bytes:
    matrix = np.array(confusion)
    fig, ax = plt.subplots(figsize=(6, 5))
    shown = np.where(np.eye(len(matrix), dtype=bool), 0, matrix)  # colour the errors; the diagonal would swamp them
    ax.imshow(shown, cmap="Reds")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="black" if i != j else "#2060c0")
    ax.set(xlabel="predicted", ylabel="true", xticks=range(len(matrix)), yticks=range(len(matrix)),
           title="Confusion matrix (errors coloured)")
    return figure_png(fig)


def per_class_figure(per_class: list[float]) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(range(len(per_class)), [100 * a for a in per_class], color="#4a7fb0")
    ax.set(xlabel="class", ylabel="accuracy (%)", xticks=range(len(per_class)), title="Per-class accuracy",
           ylim=(max(0, 100 * min(per_class) - 2), 100))
    ax.grid(axis="y", alpha=0.3)
    return figure_png(fig)


def image_grid(images: np.ndarray, captions: list[str], columns: int = 8, title: str = "") -> bytes:
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.5 * columns, 1.75 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions):
        ax.imshow(image, cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(caption, fontsize=8)
    fig.suptitle(title)
    return figure_png(fig)


# ---------------------------------------------------------------------------------------------------------- run report
def run_report(run: str | Path, out: str | Path | None = None, wrong_count: int = 24) -> Path:
    run = Path(run)
    model, config, info, _ = load_checkpoint(model_path(run))
    test = load_test(config.data)
    label = "test set"
    if test is None:  # a file source has no labelled test split: show the validation set instead
        test, label = load_train_val(config.data, config.train.seed)[1], "validation set"
    logits = predict_logits(model, test.images)
    metrics = metrics_from_logits(logits, test.labels)
    probs = torch.softmax(logits, 1)
    confidence, predicted = probs.max(1)
    wrong = torch.nonzero(predicted != test.labels).flatten()
    worst = wrong[confidence[wrong].argsort(descending=True)][:wrong_count]
    wrong_grid = image_grid(test.images[worst, 0].numpy(),
                            [f"true {test.labels[i]} / pred {predicted[i]}\np={confidence[i]:.2f}" for i in worst],
                            title=f"Most confidently wrong ({len(wrong)} errors in {len(test):,})")
    sample = load_source(config.data.source, "train", config.data.data_dir).images[:6].float()
    generator = make_generator(0, "cpu")
    variants = [sample] + [augment_batch(sample, config.augment, generator) for _ in range(7)]
    preview = torch.stack(variants, 1).reshape(-1, 28, 28).numpy()  # row per digit: original, then 7 augmentations
    preview_grid = image_grid(preview, ["original" if i % 8 == 0 else "" for i in range(len(preview))],
                              title="Augmentation preview" + ("" if config.augment.enabled else " (off in this run)"))
    history = json.loads((run / "history.json").read_text()) if (run / "history.json").is_file() else []
    curves = (run / "curves.png").read_bytes() if (run / "curves.png").is_file() else None
    per_class_rows = [[c, f"{a:.2%}", sum(metrics["confusion_matrix"][c])] for c, a in
                      enumerate(metrics["per_class_accuracy"])]
    sections = [
        ("summary", "Result", f"<p>{label} accuracy <b>{metrics['accuracy']:.2%}</b> ({metrics['errors']} errors "
                              f"in {metrics['n']:,}), loss {metrics['loss']:.4f}; model from epoch {info.get('epoch')},"
                              f" chosen by validation.</p>"),
        ("model", "Model", f"<pre>{html.escape(summary(model))}</pre>"),
        ("config", "Configuration", f"<pre>{html.escape(json.dumps(info['config'], indent=2))}</pre>"
                                    f"<pre>{html.escape(json.dumps(info['env'], indent=2))}</pre>"),
        ("curves", "Learning curves", (img_tag(curves, "learning curves") if curves else "<p>no history</p>") +
         table_html(["epoch", "train loss", "train acc", "val loss", "val acc"],
                    [[h["epoch"], f"{h['train_loss']:.4f}", f"{h['train_accuracy']:.2%}", f"{h['val_loss']:.4f}",
                      f"{h['val_accuracy']:.2%}"] for h in history])),
        ("confusion", "Confusion matrix", img_tag(confusion_figure(metrics["confusion_matrix"]), "confusion matrix")),
        ("per-class", "Per-class accuracy", img_tag(per_class_figure(metrics["per_class_accuracy"]), "per class") +
         table_html(["class", "accuracy", "images"], per_class_rows)),
        ("wrong", "Most confidently wrong", img_tag(wrong_grid, "confidently wrong images")),
        ("augmentation", "Augmentation preview", img_tag(preview_grid, "augmentation preview")),
    ]
    path = Path(out) if out else run / "report.html"
    write_html(path, html_page(f"digitlab run report: {run.name}", sections))
    return path
