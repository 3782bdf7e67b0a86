"""Randomisation metrics: does the map depend on what is explained?

Random Logit (Sixt, Granz & Landgraf, "When Explanations Lie: Why Many Modified BP Attributions
Fail", ICML 2020): the map of the target class should differ from the map of a random other class.
"""
from __future__ import annotations

from typing import Callable

import keras
import numpy as np

from cams.core import model_graph
from cams.core.inputs import Targets, check_images, check_targets
from cams.metrics._scoring import check_maps, resolve_targets
from cams.metrics.similarity import ssim


def _by_max(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its max |value| (Quantus' normalise_by_max, per map); zero maps kept."""
    scale = np.abs(maps).max(axis=(1, 2), keepdims=True)
    return maps / np.where(scale > 0, scale, 1.0)


def random_logit_explanations(maps_given: bool = True) -> int:
    """Explanations per image: the random other class's map, plus the target's when not given."""
    return 1 if maps_given else 2


def random_logit(model: keras.Model, explain: Callable, images, maps=None, targets: Targets = None,
                 seed: int = 0, other_targets: Targets = None) -> np.ndarray:
    """Random Logit test (Sixt et al. 2020), per image: SSIM(E(x, t), E(x, t')) with t' drawn
    uniformly from the classes other than t. Lower = the map depends more on the class explained.

    Each map is divided by its max |value| (Quantus' normalise_by_max), then compared by
    `cams.metrics.similarity.ssim` (2-D SSIM of the absolute maps, 7 x 7 windows, data range =
    span of both). Quantus' RandomLogit flattens both maps and runs a 1-D SSIM along the flattened
    vector; we compare the maps as 2-D images, as Sixt et al. compare saliency images.
    Cost: `random_logit_explanations(maps is not None)` explanations per image, plus one forward
    pass when targets are None.

    Args:
        model: the Keras classifier (gives the number of classes and the top-1 class).
        explain: callable (images, targets) -> (N, H, W) maps.
        images: (N, H, W, C) inputs.
        maps: E(x, t) when already computed, else None.
        targets: None (top-1), an int or N ints.
        seed: seeds the draw of t'.
        other_targets: t' given explicitly (N ints, each != t) instead of drawn.
    Returns:
        (N,) float64 SSIM values in [-1, 1].
    """
    x = check_images(images, model_graph.input_shape(model))
    n_classes = model_graph.num_classes(model)
    if n_classes < 2:
        raise ValueError(f"random_logit needs a model with at least 2 classes, got {n_classes}")
    t = resolve_targets(model, x, targets, 32)
    if other_targets is None:
        draw = np.random.default_rng(seed).integers(0, n_classes - 1, size=len(x))
        other = draw + (draw >= t)  # uniform over the classes other than t
    else:
        other = check_targets(other_targets, len(x), n_classes)
        if np.any(other == t):
            raise ValueError(f"other_targets must differ from the targets; image {int(np.argmax(other == t))} has both = {int(t[np.argmax(other == t)])}")
    base = check_maps(explain(x, t) if maps is None else maps, x)
    rand = check_maps(explain(x, other), x)
    return ssim(_by_max(base.astype(np.float64)), _by_max(rand.astype(np.float64)))
