"""Localisation metrics: how well a map falls on a ground-truth region (binary mask per image).

Maps and masks are (N, H, W) arrays of the same shape (masks may carry a trailing channel of 1);
a mask pixel > 0 is inside the region. The model is not run.
"""
from __future__ import annotations

import cv2
import numpy as np

from cams.metrics._scoring import drop_channel_axis


def _check_masks(maps, masks, metric: str = "pointing game"):
    m = np.asarray(maps, dtype=np.float32)
    g = drop_channel_axis(np.asarray(masks))
    if m.ndim != 3 or g.shape != m.shape:
        raise ValueError(f"maps and masks must both be (N, H, W) of the same shape, got {m.shape} and {g.shape}")
    g = g > 0
    empty = np.flatnonzero(~g.reshape(len(g), -1).any(axis=1))
    if len(empty):
        raise ValueError(f"ground-truth mask {int(empty[0])} is empty; {metric} needs a non-empty region")
    return m, g


def pointing_game(maps, masks, tolerance: int = 0) -> float:
    """Pointing game (Zhang 2016): share of maps whose maximum falls inside the ground-truth mask,
    the mask dilated by `tolerance` pixels (15 in the original paper)."""
    m, g = _check_masks(maps, masks)
    if tolerance > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1, 2 * tolerance + 1))
        g = np.stack([cv2.dilate(gi.astype(np.uint8), kernel) > 0 for gi in g])
    hits = [g[i].ravel()[np.argmax(m[i])] for i in range(len(m))]
    return float(np.mean(hits))


def energy_in_mask(maps, masks) -> float:
    """Energy-based pointing game (Wang 2020): mean over images of sum(map * mask) / sum(map)
    (a map with zero energy scores 0)."""
    m, g = _check_masks(maps, masks)
    m = np.maximum(m, 0.0)
    total = m.reshape(len(m), -1).sum(axis=1)
    inside = (m * g).reshape(len(m), -1).sum(axis=1)
    return float(np.mean(np.where(total > 0, inside / np.where(total > 0, total, 1.0), 0.0)))


energy_pointing_game = energy_in_mask


def relevance_mass(maps, masks) -> np.ndarray:
    """Relevance Mass Accuracy (Arras, Osman & Samek, "CLEVR-XAI", Information Fusion 2022), per map:

        RMA = R_within / R_total = sum_{k in mask} R_k / sum_k R_k

    with R = max(map, 0) (positive relevance; for the non-negative maps the explainers return this
    is Quantus' RelevanceMassAccuracy). 1 when all relevance lies inside the mask; a map with no
    positive relevance scores 0.

    Args:
        maps: (N, H, W) maps.
        masks: (N, H, W) ground truth, > 0 inside; none may be empty.
    Returns:
        (N,) float64 in [0, 1].
    """
    m, g = _check_masks(maps, masks, "relevance mass")
    r = np.maximum(m.astype(np.float64), 0.0).reshape(len(m), -1)
    total, inside = r.sum(axis=1), (r * g.reshape(len(g), -1)).sum(axis=1)
    return np.where(total > 0, inside / np.where(total > 0, total, 1.0), 0.0)


def relevance_rank(maps, masks) -> np.ndarray:
    """Relevance Rank Accuracy (Arras, Osman & Samek 2022), per map: with K = |mask| pixels, the
    share of the K highest-relevance pixels that fall inside the mask,

        RRA = |{top-K pixels of the map} intersect mask| / K

    (ties broken in raster order). 1 when the mask holds the K most relevant pixels.

    Args:
        maps: (N, H, W) maps.
        masks: (N, H, W) ground truth, > 0 inside; none may be empty.
    Returns:
        (N,) float64 in [0, 1].
    """
    m, g = _check_masks(maps, masks, "relevance rank")
    flat, gt = m.reshape(len(m), -1), g.reshape(len(g), -1)
    k = gt.sum(axis=1)
    order = np.argsort(-flat, axis=1, kind="stable")
    hits = np.take_along_axis(gt, order, axis=1) & (np.arange(flat.shape[1])[None, :] < k[:, None])
    return hits.sum(axis=1) / k
