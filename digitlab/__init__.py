"""digitlab: train, diagnose and ship handwritten-digit classifiers (MNIST, Kaggle's Digit Recognizer, 28x28 sets)."""

__version__ = "0.1.0"

from .config import AugmentConfig, DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from .errors import DataError, DigitlabError  # noqa: E402

__all__ = [
    "AugmentConfig",
    "DataConfig",
    "DataError",
    "DigitlabError",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "__version__",
]
