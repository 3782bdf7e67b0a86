"""Fidelity (faithfulness) metrics: how the model's score reacts when the map hides or reveals pixels.

Average Drop / Increase in Confidence, Feature CAM's explanation maps and their scores, the
causal insertion / deletion AUCs and MuFidelity (ROAD is in `cams.metrics.imputation`).
Probabilities are softmax of the model's pre-softmax logits (see `cams.core.model_graph`). Maps
are (N, H, W) arrays at the input resolution, as returned by the explainers.
"""
from __future__ import annotations

from typing import Dict, Sequence

import cv2
import keras
import numpy as np

from cams.core import model_graph
from cams.core.inputs import Targets, check_count, check_images
from cams.metrics._scoring import (check_maps, logits_and_targets, probabilities, take_targets, target_probs, target_scores,
                                   targets_and_probs)


def keep_top(maps: np.ndarray, percent: float) -> np.ndarray:
    """Keep the top `percent`% of each map's pixels with their values; zero the rest."""
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    thr = np.percentile(maps.reshape(len(maps), -1), 100.0 - percent, axis=1)[:, None, None]
    return np.where(maps >= thr, maps, 0.0).astype(np.float32)


def ad_ic(
    model: keras.Model,
    images,
    maps,
    percents: Sequence[float] = (100, 50, 15),
    targets: Targets = None,
    batch_size: int = 32,
    fill: float = 0.0,
) -> Dict[str, float]:
    """Average Drop and Increase in Confidence (Chattopadhay 2018; thresholds as in L-CAM's code).

    Y_i = P(t_i | x_i); for each percent L the top L% of map pixels keep their values, the rest
    is zeroed, and O_i = P(t_i | fill + (x_i - fill) * map_i). AD = 100/N sum max(0, Y - O)/Y,
    IC = 100/N sum [O > Y]. fill = 0 is the official protocol (x * map on standardised inputs,
    i.e. hidden pixels go to the input-space zero); pass black's value for a black baseline.
    Targets default to the top-1 class on x; target objects (`cams.targets`, e.g. a Segmentation mask)
    make Y and O their probabilities. Returns {"AD(100%)": ..., "IC(100%)": ..., ...}.
    """
    x = check_images(images, model_graph.input_shape(model))
    m = check_maps(maps, x)
    t, y = targets_and_probs(model, x, targets, batch_size)
    out: Dict[str, float] = {}
    for pct in percents:
        masked = fill + (x - fill) * keep_top(m, pct)[..., None]
        o = target_probs(model, masked, t, batch_size)
        out[f"AD({pct:g}%)"] = float(100.0 * np.mean(np.maximum(0.0, y - o) / y))
        out[f"IC({pct:g}%)"] = float(100.0 * np.mean(o > y))
    return out


def explanation_map(images, maps, percentile: float = 80, fill: float = 0.0) -> np.ndarray:
    """Feature CAM's explanation map: original pixels where map >= its `percentile`, `fill` elsewhere.

    `fill` is black in the model's input space: 0 for [0, 1] or [0, 255] inputs, -1 for [-1, 1].
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"images must have shape (N, H, W, C), got {x.shape}")
    m = check_maps(maps, x)
    if not 0 <= percentile < 100:
        raise ValueError(f"percentile must be in [0, 100), got {percentile}")
    thr = np.percentile(m.reshape(len(m), -1), percentile, axis=1)[:, None, None]
    return np.where((m >= thr)[..., None], x, np.float32(fill)).astype(np.float32)


def explanation_map_scores(
    model: keras.Model, images, maps, percentile: float = 80, batch_size: int = 32, fill: float = 0.0
) -> Dict[str, float]:
    """Feature CAM's evaluation of explanation maps against the original images.

    right_classification: % of explanation maps given the class predicted on the original image;
    mean_confidence: mean % probability of that class on the explanation maps;
    original_confidence: the same on the original images.
    """
    x = check_images(images, model_graph.input_shape(model))
    p_orig = probabilities(model, x, batch_size)
    cls = p_orig.argmax(axis=1)
    p_exp = probabilities(model, explanation_map(x, maps, percentile, fill), batch_size)
    idx = np.arange(len(x))
    return {
        "right_classification": float(100.0 * np.mean(p_exp.argmax(axis=1) == cls)),
        "mean_confidence": float(100.0 * np.mean(p_exp[idx, cls])),
        "original_confidence": float(100.0 * np.mean(p_orig[idx, cls])),
    }


def _blur(x: np.ndarray) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(img, (11, 11), 5.0).reshape(img.shape) for img in x])


def _causal_auc(model, images, maps, targets, steps, batch_size, insertion: bool, substrate: str):
    x = check_images(images, model_graph.input_shape(model))
    m = check_maps(maps, x)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if substrate not in ("zeros", "blur"):
        raise ValueError(f"substrate must be 'zeros' or 'blur', got {substrate!r}")
    t, _ = targets_and_probs(model, x, targets, batch_size)
    base = np.zeros_like(x) if substrate == "zeros" else _blur(x)
    n, h, w, c = x.shape
    per_step = int(np.ceil(h * w / steps))
    curves = np.empty((n, steps + 1), np.float32)
    for i in range(n):
        order = np.argsort(-m[i].ravel(), kind="stable")
        start, finish = (base[i], x[i]) if insertion else (x[i], base[i])
        seq = np.empty((steps + 1, h * w, c), np.float32)
        cur = start.reshape(h * w, c).copy()
        src = finish.reshape(h * w, c)
        for s in range(steps + 1):
            seq[s] = cur
            idx = order[s * per_step : (s + 1) * per_step]
            cur[idx] = src[idx]
        curves[i] = target_probs(model, seq.reshape(steps + 1, h, w, c), take_targets(t, [i] * (steps + 1)), batch_size)
    auc = (curves[:, :-1] + curves[:, 1:]).sum(axis=1) / (2.0 * steps)
    return float(auc.mean()), curves


def deletion_auc(model, images, maps, targets: Targets = None, steps: int = 32, batch_size: int = 32,
                 substrate: str = "zeros", return_curves: bool = False):
    """Deletion (Petsiuk 2018): remove pixels most-salient first (to `substrate`); area under
    P(target) against the removed fraction (trapezoid on [0, 1]). Lower is better."""
    auc, curves = _causal_auc(model, images, maps, targets, steps, batch_size, False, substrate)
    return (auc, curves) if return_curves else auc


def insertion_auc(model, images, maps, targets: Targets = None, steps: int = 32, batch_size: int = 32,
                  substrate: str = "blur", return_curves: bool = False):
    """Insertion (Petsiuk 2018): start from a blurred copy and insert pixels most-salient first;
    area under P(target) against the inserted fraction. Higher is better."""
    auc, curves = _causal_auc(model, images, maps, targets, steps, batch_size, True, substrate)
    return (auc, curves) if return_curves else auc


def mufidelity_forward_passes(n_samples: int = 128) -> int:
    """Forward passes per image of `mufidelity`: one per random subset plus the clean image."""
    return n_samples + 1


def _feature_ids(h: int, w: int, grid) -> np.ndarray:
    """(H, W) feature index per pixel: the pixel itself, or its cell of a grid x grid partition."""
    if grid is None:
        return np.arange(h * w).reshape(h, w)
    rows = np.minimum(np.arange(h) * grid // h, grid - 1)
    cols = np.minimum(np.arange(w) * grid // w, grid - 1)
    return rows[:, None] * grid + cols[None, :]


def _subsets(rng, n_samples: int, n_features: int, k: int) -> np.ndarray:
    """(n_samples, n_features) bool: each row a uniform random subset of size k, without replacement."""
    chosen = np.argpartition(rng.random((n_samples, n_features)), k - 1, axis=1)[:, :k]
    out = np.zeros((n_samples, n_features), bool)
    np.put_along_axis(out, chosen, True, axis=1)
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def mufidelity(model: keras.Model, images, maps, targets: Targets = None, subset_fraction: float = 0.2,
               n_samples: int = 128, baseline: float = 0.0, seed: int = 0, batch_size: int = 32,
               grid=None) -> np.ndarray:
    """Faithfulness correlation mu_F (Bhatt, Weller & Moura, IJCAI 2020), per image.

    mu_F(x) = corr_{S in random subsets of size |S|} ( sum_{i in S} g_i , f_t(x) - f_t(x[x_S = baseline]) )

    with g the map, f_t the *pre-softmax logit* of the target (Quantus' default, softmax=False) and
    Pearson's correlation over `n_samples` subsets. Features are pixels (all channels removed
    together) or, with `grid`, the cells of a grid x grid partition; |S| = round(subset_fraction *
    number of features), at least 1. A subset whose attribution sums or score drops are all equal
    gives NaN. Cost: `mufidelity_forward_passes(n_samples)` per image, streamed `batch_size` at a time.

    Args:
        model: as `road`.
        images: as `road`.
        maps: as `road`.
        targets: as `road` (None = the top-1 class on x).
        subset_fraction: share of the features removed per sample, in (0, 1).
        n_samples: random subsets per image (>= 2).
        baseline: value the removed pixels take, in input units.
        seed: image i draws its subsets from the stream [seed, i].
        grid: None (pixel features) or the number of cells per side.
    Returns:
        (N,) float32 correlations in [-1, 1].
    """
    x = check_images(images, model_graph.input_shape(model))
    m = check_maps(maps, x)
    if not 0 < subset_fraction < 1:
        raise ValueError(f"subset_fraction must be in (0, 1), got {subset_fraction}")
    if not n_samples >= 2:
        raise ValueError(f"n_samples must be >= 2 (a correlation needs two subsets), got {n_samples}")
    if grid is not None and not (check_count(grid, "grid") <= min(x.shape[1:3])):
        raise ValueError(f"grid must be at most the image side {min(x.shape[1:3])}, got {grid}")
    batch_size = check_count(batch_size, "batch_size")
    n, h, w, c = x.shape
    ids = _feature_ids(h, w, grid).ravel()
    n_feat = int(ids.max()) + 1
    k = max(1, int(round(subset_fraction * n_feat)))
    z, t = logits_and_targets(model, x, targets, batch_size)
    clean = z[np.arange(n), t]
    out = np.empty(n, np.float32)
    for i in range(n):
        masks = _subsets(np.random.default_rng([seed, i]), int(n_samples), n_feat, k)
        sums = masks.astype(np.float64) @ np.bincount(ids, weights=m[i].ravel(), minlength=n_feat)
        removed = masks[:, ids].reshape(-1, h, w, 1)
        batches = (np.where(removed[s: s + batch_size], np.float32(baseline), x[i]) for s in range(0, len(masks), batch_size))
        drops = clean[i] - target_scores(model, batches, np.full(len(masks), t[i]), softmax=False)
        out[i] = _pearson(sums, drops.astype(np.float64))
    return out
