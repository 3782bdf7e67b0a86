"""Complexity metrics: how concentrated a map is. The model is not run (0 forward passes).

Both take (N, H, W) maps (a trailing channel of 1 is accepted) and return one score per map.
"""
from __future__ import annotations

import numpy as np

from cams.metrics._scoring import drop_channel_axis


def _flat_abs(maps) -> np.ndarray:
    m = drop_channel_axis(np.asarray(maps, dtype=np.float64))
    if m.ndim != 3 or m.size == 0:
        raise ValueError(f"maps must have shape (N, H, W), got {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("maps contain NaN or infinite values")
    return np.abs(m.reshape(len(m), -1))


def sparseness(maps) -> np.ndarray:
    """Sparseness (Chalasani et al., ICML 2020): the Gini index of |map|, per map.

    With a_(1) <= ... <= a_(n) the sorted absolute values,
    G = sum_i (2 i - n - 1) a_(i) / (n sum_i a_(i)): 0 for a constant map, 1 - 1/n for a one-hot
    map (higher = sparser). An all-zero map scores 0.

    Args:
        maps: (N, H, W) maps.
    Returns:
        (N,) float64 Gini indices in [0, 1 - 1/n].
    """
    a = np.sort(_flat_abs(maps), axis=1)
    n = a.shape[1]
    total = a.sum(axis=1)
    num = ((2 * np.arange(1, n + 1) - n - 1) * a).sum(axis=1)
    return np.where(total > 0, num / (n * np.where(total > 0, total, 1.0)), 0.0)


def complexity(maps) -> np.ndarray:
    """Complexity (Bhatt, Weller & Moura, IJCAI 2020): entropy of the map as a distribution, per map.

    p_i = |a_i| / sum_j |a_j|, C = -sum_i p_i ln p_i (0 ln 0 = 0): ln n for a uniform map, 0 for a
    one-hot map (lower = simpler). An all-zero map has no distribution and scores NaN.

    Args:
        maps: (N, H, W) maps.
    Returns:
        (N,) float64 entropies in nats.
    """
    a = _flat_abs(maps)
    total = a.sum(axis=1, keepdims=True)
    p = a / np.where(total > 0, total, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return np.where(total[:, 0] > 0, ent, np.nan)


def complexity_forward_passes() -> int:
    """Forward passes per image of `sparseness` and `complexity`: none."""
    return 0
