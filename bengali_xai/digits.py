"""The in-memory digit set every loader returns (DigitData), its shape constants and stratified subsets.

Imports no loader, so the loaders (data_ekush, data_numtadb, synthetic) and the dispatcher in
`data` can all import it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import BengaliXAIError

#: the fix named when a label or pixel CSV is not UTF-8 (cams.core.files.read_utf8)
UTF8_FIX = "save it as UTF-8 (e.g. a spreadsheet's 'CSV UTF-8' format)"

IMAGE_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


@dataclass
class DigitData:
    """Digit images and labels.

    x: float32 (N, 28, 28, 1) in [0, 1]; y: int64 (N,) digits 0..9.
    heldout: optional bool (N,); when given, these samples form the test set of every split
    (the synthetic set's held-out fonts), the rest is split into train/validation.
    """

    x: np.ndarray
    y: np.ndarray
    name: str
    heldout: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.x.ndim != 4 or self.x.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"x must be (N, 28, 28, 1), got {self.x.shape}")
        if len(self.x) != len(self.y):
            raise ValueError(f"{len(self.x)} images but {len(self.y)} labels")
        if self.heldout is not None and len(self.heldout) != len(self.y):
            raise ValueError("heldout mask must have one entry per image")

    def __len__(self) -> int:
        return len(self.y)


def subsample(data: DigitData, max_samples: int | None, seed: int = 0) -> DigitData:
    """A stratified, seeded subset of at most `max_samples` samples (the whole set when None)."""
    if max_samples is None or max_samples >= len(data):
        return data
    if max_samples < NUM_CLASSES:
        raise BengaliXAIError(f"--max-samples must be at least {NUM_CLASSES}, got {max_samples}")
    idx = stratified_indices(data.y, max_samples, seed)
    held = None if data.heldout is None else data.heldout[idx]
    return DigitData(data.x[idx], data.y[idx], data.name, held, dict(data.info, max_samples=max_samples))


def stratified_indices(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subset of size n whose class shares follow y's."""
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(y)), train_size=n, random_state=seed, stratify=stratify_labels(y))
    return np.sort(keep)


def stratify_labels(y: np.ndarray) -> np.ndarray | None:
    """`y` for scikit-learn's `stratify=`, or None when some class has a single sample (it cannot be split)."""
    counts = np.bincount(y)
    return y if counts[counts > 0].min() >= 2 else None
