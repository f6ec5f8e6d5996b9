"""Every figure digitlab draws, as PNG: a run's learning curves, the confusion matrix, per-class accuracy, image
grids, and the lab's validation curves, generalisation gap and accuracy-against-size plots.

matplotlib with the non-interactive Agg backend, so figures are drawn on machines without a screen. Functions return
PNG bytes (`figure_png`) except `plot_history`, which writes the run folder's curves.png atomically.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from .files import atomic_write  # noqa: E402


def plot_history(history: list[dict], path: str | Path) -> None:
    """Two panels, accuracy and loss per epoch, training vs validation; overfitting shows as a widening gap."""
    epochs = [h["epoch"] for h in history]
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    ax_acc.plot(epochs, [100 * h["train_accuracy"] for h in history], "o-", label="train (augmented batches)")
    ax_acc.plot(epochs, [100 * h["val_accuracy"] for h in history], "s-", label="validation")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], "s-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss", yscale="log")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def confusion_figure(confusion: list[list[int]]) -> bytes:
    matrix = np.array(confusion)
    fig, ax = plt.subplots(figsize=(6, 5))
    shown = np.where(np.eye(len(matrix), dtype=bool), 0, matrix)  # colour the errors; the diagonal would swamp them
    ax.imshow(shown, cmap="Reds")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="black" if i != j else "#2060c0")
    ax.set(
        xlabel="predicted",
        ylabel="true",
        xticks=range(len(matrix)),
        yticks=range(len(matrix)),
        title="Confusion matrix (errors coloured)",
    )
    return figure_png(fig)


def per_class_figure(per_class: list[float]) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(range(len(per_class)), [100 * a for a in per_class], color="#4a7fb0")
    ax.set(
        xlabel="class",
        ylabel="accuracy (%)",
        xticks=range(len(per_class)),
        title="Per-class accuracy",
        ylim=(max(0, 100 * min(per_class) - 2), 100),
    )
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
    fig.tight_layout()  # without it the right panel's axis label runs into the left panel
    return figure_png(fig)


def gap_figure(curves: dict) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 4))
    for (name, size), histories in curves.items():
        label = name if len({s for _, s in curves}) == 1 else f"{name}, n={size}"
        epochs = [h["epoch"] for h in histories[0]]
        gap = mean_curve(histories, lambda h: h["train_eval_accuracy"] - h["val_accuracy"])
        ax.plot(epochs, 100 * gap, "o-", ms=3, label=label)
    ax.axhline(0, color="black", lw=0.8)
    ax.set(
        xlabel="epoch",
        ylabel="train - validation accuracy (points)",
        title="Generalisation gap (clean training set, eval mode)",
    )
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


def lr_find_figure(rates: list[float], smoothed: list[float], suggestion: float) -> bytes:
    """The range test: smoothed training loss against the learning rate (log scale), the suggestion marked."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(rates, smoothed, color="#4a7fb0")
    ax.axvline(suggestion, color="#c04040", ls="--", label=f"suggested peak lr {suggestion:.2g}")
    top = min(max(smoothed), 3 * min(smoothed[: max(1, len(smoothed) // 10)]))
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss (smoothed)", title="Learning-rate range test",
           ylim=(0.9 * min(smoothed), top))  # fmt: skip
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return figure_png(fig)
