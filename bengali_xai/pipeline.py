"""Seeded stratified splits (80/20 for the baselines, 60/20/20 for the CNN) and tf.data pipelines."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .digits import NUM_CLASSES, DigitData, stratify_labels
from .errors import BengaliXAIError


@dataclass
class Split:
    """Index arrays into a DigitData; `val` is empty for a two-way split."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def _two_way(idx: np.ndarray, y: np.ndarray, test_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    try:
        a, b = train_test_split(idx, test_size=test_share, random_state=seed, stratify=stratify_labels(y[idx]))
    except ValueError as err:  # too few samples for a stratified split
        raise BengaliXAIError(f"cannot split {len(idx)} samples {1 - test_share:.0%}/{test_share:.0%}: {err}") from None
    return np.sort(a), np.sort(b)


def split_data(data: DigitData, val: float = 0.2, test: float = 0.2, seed: int = 0) -> Split:
    """Stratified seeded split into train/val/test shares (val=0 gives a train/test split).

    When `data.heldout` is set (synthetic held-out fonts) those samples are the test set and
    the others are split into train/val in the ratio (1 - val - test) : val.
    """
    idx = np.arange(len(data))
    if data.heldout is not None:
        test_idx, rest = idx[data.heldout], idx[~data.heldout]
    else:
        rest, test_idx = _two_way(idx, data.y, test, seed)
    if val <= 0:
        return Split(rest, np.array([], np.int64), test_idx)
    train_idx, val_idx = _two_way(rest, data.y, val / (1.0 - test), seed)
    return Split(train_idx, val_idx, test_idx)


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool = False, seed: int = 0,
                 cache: bool = True):
    """A tf.data pipeline of (image, one-hot label) batches: cache -> shuffle -> batch -> prefetch."""
    import tensorflow as tf

    if batch_size < 1:
        raise BengaliXAIError(f"--batch-size must be at least 1, got {batch_size}")
    ds = tf.data.Dataset.from_tensor_slices((x.astype(np.float32), np.eye(NUM_CLASSES, dtype=np.float32)[y]))
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(min(len(y), 10000), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
