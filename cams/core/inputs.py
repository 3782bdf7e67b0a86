"""Validation of user inputs: images, targets and counts. Every problem is a ValueError that says what is wrong."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

Targets = Union[None, int, Sequence[int], np.ndarray]


def check_count(value, name: str) -> int:
    """Return `value` as an int after checking it is at least 1 (batch sizes, samples, steps, epochs).

    Args:
        value: the number given.
        name: its argument name, for the message.
    Returns:
        int(value).
    Raises:
        ValueError: "<name> must be >= 1, got <value>".
    """
    if not value >= 1:  # NaN too
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_images(images, model_shape: Sequence[Optional[int]], name: str = "images") -> np.ndarray:
    """Return `images` as float32 (N, H, W, C) after checking rank, size, channels and finiteness."""
    try:
        x = np.asarray(images, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array of shape (N, H, W, C): {err}") from None
    if x.ndim != 4:
        hint = " (for one image, pass image[None])" if x.ndim == 3 else ""
        raise ValueError(f"{name} must have shape (N, H, W, C), got rank {x.ndim} shape {x.shape}{hint}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (N = 0)")
    _, mh, mw, mc = model_shape
    if mc is not None and x.shape[-1] != mc:
        raise ValueError(f"{name} have {x.shape[-1]} channels but the model expects {mc} (shape {x.shape})")
    if (mh is not None and x.shape[1] != mh) or (mw is not None and x.shape[2] != mw):
        raise ValueError(
            f"{name} are {x.shape[1]}x{x.shape[2]} but the model expects {mh}x{mw}; resize them first"
        )
    bad = ~np.isfinite(x)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} contain NaN or infinite values (first at index {idx}); clean the input")
    return x


def check_targets(targets: Targets, n: int, n_classes: int) -> np.ndarray:
    """Return int32 (N,) targets; -1 stands for 'the model's top-1 prediction' (targets=None)."""
    if targets is None:
        return np.full((n,), -1, dtype=np.int32)
    arr = np.asarray(targets)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"targets must be None, an int or {n} ints, got {targets!r}")
    if arr.ndim == 0:
        arr = np.full((n,), int(arr))
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"targets must be None, an int or {n} ints (one per image), got shape {arr.shape}")
    out_of_range = (arr < 0) | (arr >= n_classes)
    if out_of_range.any():
        bad = int(arr[out_of_range][0])
        raise ValueError(f"target class {bad} is out of range: the model has {n_classes} classes (0..{n_classes - 1})")
    return arr.astype(np.int32)
