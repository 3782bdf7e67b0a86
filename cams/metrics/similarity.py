"""Similarity between two sets of saliency maps, per image: the measures of Adebayo et al.'s
randomisation tests ("Sanity Checks for Saliency Maps", NeurIPS 2018, Sec. 3 and Fig. 2).

For maps a, b of one image (flattened to vectors of H*W values):

    spearman(a, b)      = Pearson(rank(a), rank(b))          (rank correlation of the signed maps)
    spearman_abs(a, b)  = spearman(|a|, |b|)                 (of the absolute maps)
    ssim(a, b)          = mean structural similarity (Wang et al., IEEE TIP 2004) of |a| and |b|
    hog_pearson(a, b)   = Pearson(HOG(|a|), HOG(|b|))         (histograms of oriented gradients,
                                                               Dalal & Triggs, CVPR 2005)

Ranks are average ranks (ties share the mean rank), as `scipy.stats.spearmanr` assigns them.
A constant map carries no ranking and no gradient: its correlation with another map is taken as 0,
and two identical constant maps as 1 (never NaN, so a map that collapses to zeros after
randomisation counts as decorrelated). Every function takes two (N, H, W) arrays and returns a
float64 array (N,), one value per image.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
from scipy.stats import rankdata

#: the measures `similarities` returns, in the order of the randomisation table
MEASURES = ("spearman_abs", "spearman", "ssim", "hog")


def _pair(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim != 3 or a.shape != b.shape:
        raise ValueError(f"maps must be two (N, H, W) arrays of one shape, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("maps contain NaN or infinite values; check the explainer's output")
    return a, b


def _rowwise_pearson(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of u with the same row of v (N, D) -> (N,), 0/1 for constant rows."""
    u = u - u.mean(axis=1, keepdims=True)
    v = v - v.mean(axis=1, keepdims=True)
    nu, nv = np.sqrt((u * u).sum(axis=1)), np.sqrt((v * v).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (u * v).sum(axis=1) / (nu * nv)
    constant = (nu == 0) | (nv == 0)
    same = np.all(u == v, axis=1)
    return np.clip(np.where(constant, np.where(same, 1.0, 0.0), r), -1.0, 1.0)


def spearman(a, b) -> np.ndarray:
    """Spearman rank correlation of each signed map of `a` with the same image's map of `b`.

    Args:
        a: (N, H, W) maps (any real values).
        b: (N, H, W) maps (any real values).

    Returns:
        float64 (N,) in [-1, 1] (0 where one map is constant, 1 where both are the same constant).
    """
    a, b = _pair(a, b)
    n = len(a)
    return _rowwise_pearson(rankdata(a.reshape(n, -1), axis=1), rankdata(b.reshape(n, -1), axis=1))


def spearman_abs(a, b) -> np.ndarray:
    """Spearman rank correlation of |a| and |b|, per image (see `spearman`)."""
    a, b = _pair(a, b)
    return spearman(np.abs(a), np.abs(b))


def _odd_window(h: int, w: int, win_size: int) -> int:
    side = min(win_size, h, w)
    return side if side % 2 else side - 1


def ssim(a, b, win_size: int = 7) -> np.ndarray:
    """Mean SSIM of |a| and |b| per image (`skimage.metrics.structural_similarity`, Gaussian-free
    uniform window of `win_size`, shrunk to the largest odd size the map allows).

    The data range is the span of both maps' values together (1 for maps in [0, 1] reaching 0 and 1).

    Args:
        a: (N, H, W) maps, H and W >= 3.
        b: (N, H, W) maps, H and W >= 3.
        win_size: the side of the sliding window (odd).

    Returns:
        float64 (N,) in [-1, 1].
    """
    from skimage.metrics import structural_similarity

    a, b = _pair(np.abs(a), np.abs(b))
    h, w = a.shape[1:]
    if min(h, w) < 3:
        raise ValueError(f"SSIM needs maps of at least 3x3 pixels, got {h}x{w}")
    win = _odd_window(h, w, win_size)
    out = np.empty(len(a))
    for i, (p, q) in enumerate(zip(a, b)):
        span = max(p.max(), q.max()) - min(p.min(), q.min())
        out[i] = 1.0 if span == 0 else structural_similarity(p, q, win_size=win, data_range=span)
    return out


def hog_features(maps, pixels_per_cell: int = 8, cells_per_block: int = 2, orientations: int = 9) -> np.ndarray:
    """HOG descriptors of |maps| (`skimage.feature.hog`, L2-Hys blocks), one row per map (N, D).

    The cell side is shrunk to a quarter of the map's shorter side when the map is small, so a
    28 x 28 digit map still has 4 x 4 cells.
    """
    from skimage.feature import hog

    maps = np.abs(np.asarray(maps, np.float64))
    h, w = maps.shape[1:]
    cell = max(1, min(pixels_per_cell, min(h, w) // 4))
    block = max(1, min(cells_per_block, min(h, w) // cell))
    return np.stack([hog(m, orientations=orientations, pixels_per_cell=(cell, cell), cells_per_block=(block, block),
                         feature_vector=True) for m in maps])


def hog_pearson(a, b, pixels_per_cell: int = 8) -> np.ndarray:
    """Pearson correlation of the HOG descriptors of |a| and |b| per image (see `hog_features`)."""
    a, b = _pair(a, b)
    return _rowwise_pearson(hog_features(a, pixels_per_cell), hog_features(b, pixels_per_cell))


class Comparison:
    """The four measures of `MEASURES` against one set of reference maps, whose ranks and HOG
    descriptors are computed once (a randomisation test compares the same reference with every step).

    Args:
        reference: the original model's maps (N, H, W) (signed maps where the method has them).

    Call it with other maps of the same shape: {"spearman_abs", "spearman", "ssim", "hog": float64 (N,)}.
    """

    def __init__(self, reference):
        self.reference, _ = _pair(reference, reference)
        flat = self.reference.reshape(len(self.reference), -1)
        self.ranks, self.abs_ranks = rankdata(flat, axis=1), rankdata(np.abs(flat), axis=1)
        self.hog = hog_features(self.reference)

    def __call__(self, other) -> Dict[str, np.ndarray]:
        _, other = _pair(self.reference, other)
        flat = other.reshape(len(other), -1)
        return {"spearman_abs": _rowwise_pearson(self.abs_ranks, rankdata(np.abs(flat), axis=1)),
                "spearman": _rowwise_pearson(self.ranks, rankdata(flat, axis=1)),
                "ssim": ssim(self.reference, other),
                "hog": _rowwise_pearson(self.hog, hog_features(other))}


def similarities(reference, other) -> Dict[str, np.ndarray]:
    """All four measures of `MEASURES` between `reference` and `other` maps (N, H, W).

    Args:
        reference: the original model's maps (signed maps where the method has them).
        other: the randomised model's maps, same shape.

    Returns:
        {"spearman_abs", "spearman", "ssim", "hog": float64 (N,)}.
    """
    return Comparison(reference)(other)
