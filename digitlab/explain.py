"""Why a digit was read as it was: Integrated Gradients over the input pixels, computed with Captum.

`attributions(model, images, targets)` gives, for each image (N, 1, 28, 28, raw pixels) and target class, a 28x28
map of how much each pixel moved the target's logit: Integrated Gradients (Sundararajan et al., 2017) along the
straight path from an all-black image — MNIST's background, so "no ink" — to the image, 32 steps. By the method's
completeness property the map sums to logit(image) - logit(black). Red pixels pushed toward the class, blue ones
against it.

`saliency_grid` draws each misread digit with the map toward the class the model chose and toward the true class:
what made it say the wrong digit, and what spoke for the right one. The run report includes it for the most
confidently wrong test images. Captum is an optional extra: `pip install 'digitlab[explain]'`.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import DigitlabError
from .figures import figure_png, plt

STEPS = 32


def captum_available() -> bool:
    try:
        import captum.attr  # noqa: F401
    except ImportError:
        return False
    return True


def attributions(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """(N, 28, 28) Integrated Gradients of the target logits with respect to the raw pixels."""
    if not captum_available():
        raise DigitlabError("saliency needs Captum: pip install 'digitlab[explain]'")
    from captum.attr import IntegratedGradients

    model = model.eval()
    device = next(model.parameters()).device
    x = images.float().to(device).contiguous()  # (N, 1, 28, 28)
    method = IntegratedGradients(model)
    maps = method.attribute(x, baselines=torch.zeros_like(x), target=targets.to(device), n_steps=STEPS,
                            internal_batch_size=256)  # fmt: skip
    return maps.detach().cpu()[:, 0].numpy()


def saliency_grid(images: np.ndarray, toward_predicted: np.ndarray, toward_true: np.ndarray, captions: list[str]):
    """PNG: a row per image — the digit, the map toward the predicted class, the map toward the true class."""
    rows = len(images)
    fig, axes = plt.subplots(rows, 3, figsize=(5.4, 1.9 * rows), squeeze=False)
    for row, (image, pred_map, true_map, caption) in enumerate(zip(images, toward_predicted, toward_true, captions)):
        scale = max(np.abs(pred_map).max(), np.abs(true_map).max(), 1e-9)
        axes[row, 0].imshow(image, cmap="gray_r", vmin=0, vmax=255)
        axes[row, 0].set_title(caption, fontsize=8)
        for col, (attr, title) in enumerate(((pred_map, "toward predicted"), (true_map, "toward true")), start=1):
            axes[row, col].imshow(image, cmap="gray_r", vmin=0, vmax=255, alpha=0.35)
            axes[row, col].imshow(attr, cmap="bwr", vmin=-scale, vmax=scale, alpha=0.8)
            axes[row, col].set_title(title, fontsize=8)
        for ax in axes[row]:
            ax.axis("off")
    fig.suptitle("Integrated Gradients: red pushed toward the class, blue against it", fontsize=9)
    fig.tight_layout()
    return figure_png(fig)


def explain_one(model: torch.nn.Module, image: np.ndarray) -> dict:
    """One preprocessed digit (28, 28, 0..255) -> its predicted digit, probabilities and the Integrated Gradients map
    toward that digit (28 rows of 28), as the drawing page's "Why?" shows them."""
    x = torch.as_tensor(image, dtype=torch.float32).reshape(1, 1, 28, 28)
    with torch.no_grad():
        probabilities = torch.softmax(model.eval()(x.to(next(model.parameters()).device)), 1)[0].cpu()
    digit = int(probabilities.argmax())
    saliency = attributions(model, x, torch.tensor([digit]))[0]
    return {
        "digit": digit,
        "probabilities": [round(float(p), 6) for p in probabilities],
        "input": np.asarray(image, dtype=int).reshape(28, 28).tolist(),
        "saliency": np.round(saliency, 4).tolist(),
    }
