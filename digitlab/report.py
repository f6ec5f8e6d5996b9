"""Self-contained HTML reports: one file, images embedded as base64 PNG, no scripts or external links.

`html_page` assembles sections around figures from figures.py. `run_report` writes `report.html`
for one run: model summary, config, learning curves, confusion matrix, per-class accuracy, the most confidently wrong
test images, and an augmentation preview (the same digits under several random augmentations). The lab's report
(lab_report.py) is built from the same pieces.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import torch

from .augment import augment_batch, make_generator
from .checkpoint import load_checkpoint
from .data import load_source, load_test, load_train_val
from .errors import DigitlabError
from .evaluate import metrics_from_logits, predict_logits
from .explain import attributions, captum_available, saliency_grid
from .figures import confusion_figure, image_grid, per_class_figure
from .files import atomic_write
from .models import summary
from .runs import CURVES, HISTORY_JSON, MODEL, REPORT, ROBUSTNESS, check_output, model_path, model_sha256

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; } .note { background: #fff8e0; padding: 0.6em 1em; border-left: 4px solid #e0b000; }
"""


def img_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def table_html(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_page(title: str, sections: list[tuple[str, str, str]]) -> str:
    """sections: (id, heading, inner HTML)."""
    parts = [
        f'<section id="{sid}"><h2>{html.escape(heading)}</h2>{inner}</section>' for sid, heading, inner in sections
    ]
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(parts)}</body></html>"
    )


def write_html(path: str | Path, page: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(page)


# ---------------------------------------------------------------------------------------------------------- run report
def run_report(run: str | Path, out: str | Path | None = None, wrong_count: int = 24, force: bool = False) -> Path:
    """Write the run's report.html (or `out`, checked first so that nothing is computed for a refused path)."""
    run = Path(run)
    path = check_output(out, (run,), force, owned_name=REPORT) if out else run / REPORT
    model, config, info, _ = load_checkpoint(model_path(run))
    test, label = load_test(config.data), "test set"
    if test is None:  # a file source has no labelled test split: show the validation set instead
        test, label = load_train_val(config.data, config.train.seed)[1], "validation set"
    if not len(test):
        raise DigitlabError(f"{run} was trained on the file {config.data.source} without a validation split: no "
                            "labelled images to report on (measure it: digitlab evaluate RUN --data FILE)")  # fmt: skip
    logits = predict_logits(model, test.images)
    metrics = metrics_from_logits(logits, test.labels)
    chosen = CHOSEN.get(info.get("selected_by"), "")
    summary_html = (
        f"<p>{label} accuracy <b>{metrics['accuracy']:.2%}</b> ({metrics['errors']} errors in {metrics['n']:,}), "
        f"loss {metrics['loss']:.4f}; model from epoch {info.get('epoch')}, {chosen}.</p>"
    )
    config_html = "".join(f"<pre>{html.escape(json.dumps(info[k], indent=2))}</pre>" for k in ("config", "env"))
    sections = [
        ("summary", "Result", summary_html),
        ("model", "Model", f"<pre>{html.escape(summary(model))}</pre>"),
        ("config", "Configuration", config_html),
        ("curves", "Learning curves", curves_html(run)),
        ("confusion", "Confusion matrix", img_tag(confusion_figure(metrics["confusion_matrix"]), "confusion matrix")),
        ("per-class", "Per-class accuracy", per_class_html(metrics)),
        ("wrong", "Most confidently wrong", img_tag(wrong_grid(logits, test, wrong_count), "confidently wrong")),
        ("saliency", "Why it was misread", saliency_html(model, logits, test)),
        ("augmentation", "Augmentation preview", img_tag(augmentation_grid(config), "augmentation preview")),
    ]
    if (run / ROBUSTNESS).is_file():  # written by `digitlab robustness`
        sections.append(("robustness", "Beyond the clean test set", robustness_html(run, test)))
    write_html(path, html_page(f"digitlab run report: {run.name}", sections))
    return path


CHOSEN = {"val": "chosen by validation", "last": "the last epoch (trained without a validation split)"}


def shown(value, spec: str) -> str:
    """A number of history.json as the table shows it; "-" for null (no validation split: no validation figure)."""
    return "-" if value is None else format(value, spec)


def curves_html(run: Path) -> str:
    history = json.loads((run / HISTORY_JSON).read_text()) if (run / HISTORY_JSON).is_file() else []
    curves = (run / CURVES).read_bytes() if (run / CURVES).is_file() else None
    rows = [
        [
            h["epoch"],
            shown(h["train_loss"], ".4f"),
            shown(h["train_accuracy"], ".2%"),
            shown(h["val_loss"], ".4f"),
            shown(h["val_accuracy"], ".2%"),
        ]  # fmt: skip
        for h in history
    ]
    figure = img_tag(curves, "learning curves") if curves else "<p>no history</p>"
    return figure + table_html(["epoch", "train loss", "train acc", "val loss", "val acc"], rows)


def per_class_html(metrics: dict) -> str:
    rows = [[c, f"{a:.2%}", sum(metrics["confusion_matrix"][c])] for c, a in enumerate(metrics["per_class_accuracy"])]
    figure = img_tag(per_class_figure(metrics["per_class_accuracy"]), "per class")
    return figure + table_html(["class", "accuracy", "images"], rows)


def most_confidently_wrong(logits: torch.Tensor, digits, count: int):
    """(indices of the `count` wrong predictions made with the highest confidence, all wrong indices, predicted,
    confidence)."""
    confidence, predicted = torch.softmax(logits, 1).max(1)
    wrong = torch.nonzero(predicted != digits.labels).flatten()
    return wrong[confidence[wrong].argsort(descending=True)][:count], wrong, predicted, confidence


def saliency_html(model, logits: torch.Tensor, digits, count: int = 8) -> str:
    """Integrated Gradients for the most confidently wrong images (explain.py), or how to get them."""
    if not captum_available():
        return "<p>Install Captum to see which pixels made the model misread: pip install 'digitlab[explain]'</p>"
    worst, _, predicted, confidence = most_confidently_wrong(logits, digits, count)
    if len(worst) == 0:
        return "<p>No image was misread.</p>"
    images = digits.images[worst]
    toward_predicted = attributions(model, images, predicted[worst])
    toward_true = attributions(model, images, digits.labels[worst])
    captions = [f"true {digits.labels[i]} / pred {predicted[i]} (p={confidence[i]:.2f})" for i in worst]
    grid = saliency_grid(images[:, 0].numpy(), toward_predicted, toward_true, captions)
    return img_tag(grid, "saliency of misread digits") + (
        "<p>Integrated Gradients (Captum) from a black image: red pixels pushed the model toward the class named above "
        "the map, blue ones against it.</p>"
    )


def wrong_grid(logits: torch.Tensor, digits, count: int) -> bytes:
    """The `count` wrong predictions made with the highest confidence, with true label, prediction and confidence."""
    worst, wrong, predicted, confidence = most_confidently_wrong(logits, digits, count)
    captions = [f"true {digits.labels[i]} / pred {predicted[i]}\np={confidence[i]:.2f}" for i in worst]
    title = f"Most confidently wrong ({len(wrong)} errors in {len(digits):,})"
    return image_grid(digits.images[worst, 0].numpy(), captions, title=title)


def augmentation_grid(config) -> bytes:
    """Six training digits, each followed by seven random augmentations of it (row per digit)."""
    sample = load_source(config.data.source, "train", config.data.data_dir).images[:6].float()
    generator = make_generator(0, "cpu")
    variants = [sample] + [augment_batch(sample, config.augment, generator) for _ in range(7)]
    preview = torch.stack(variants, 1).reshape(-1, 28, 28).numpy()
    captions = ["original" if i % 8 == 0 else "" for i in range(len(preview))]
    return image_grid(preview, captions, title="Augmentation preview" + ("" if config.augment.enabled else " (off)"))


def robustness_rows(result: dict) -> list[list[str]]:
    """[set, accuracy] rows of a robustness.json: the terminal table and the report show the same ones."""
    rows = [["clean", f"{result['clean_accuracy']:.2%}"]]
    rows += [[name, f"{acc:.2%}"] for name, acc in result["corruptions"].items()]
    rows += [["mean of the corruptions", f"{result['mean_corrupted_accuracy']:.2%}"]]
    rows += [
        [f"photo-like: {name}", f"{acc:.2%}"] for name, acc in result.get("photo_like", {}).get("accuracy", {}).items()
    ]
    fonts = result["fonts"]
    rows += [[f"font digits ({fonts['digits']} from {len(fonts['files'])} fonts)", f"{fonts['accuracy']:.2%}"]]
    if "other_writers" in result:  # since 2026-12-02
        writers = result["other_writers"]
        name = f"other writers: UCI, 8x8 ({writers['digits']:,} digits of {writers['writers']})"
        rows += [[name, f"{writers['accuracy']:.2%}"]]
    return rows


def robustness_html(run: Path, test) -> str:
    """The table `digitlab robustness` wrote into the run folder, and one test digit under every corruption; in its
    place a note, when it was measured on another model than the run's (the model replaced since)."""
    from .corruptions import examples

    result = json.loads((run / ROBUSTNESS).read_text())
    if result.get("model_sha256") != model_sha256(run):
        return (
            f"<p>{ROBUSTNESS} was measured on another model than this run's {MODEL} (the model changed since); "
            f"<code>digitlab robustness {html.escape(str(run))}</code> measures this one.</p>"
        )
    rows = robustness_rows(result)
    images, captions = examples(test.images[:1, 0].numpy(), result["seed"])
    intro = (
        f"<p>{result['images']:,} test images under each corruption (seed {result['seed']}, suite version "
        f"{result['suite_version']}); worst: {html.escape(result['worst']['corruption'])} "
        f"({result['worst']['accuracy']:.2%}).</p>"
    )
    return intro + table_html(["set", "accuracy"], rows) + img_tag(image_grid(images, captions, 8), "corruptions")
