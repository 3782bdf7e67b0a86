"""Robustness metrics: how much a map changes when the input moves a little (Yeh et al., "On the
(In)fidelity and Sensitivity of Explanations", NeurIPS 2019).

`explain` is any callable (images, targets) -> maps, e.g. a cams explainer instance. Perturbations
are drawn uniformly in the L-infinity ball of `radius` around each image (Quantus' default
`uniform_noise`, lower_bound = 0.2); the target stays the one explained on the clean image.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from cams.core.inputs import Targets, check_count
from cams.metrics._scoring import check_maps, resolve_targets


def sensitivity_explanations(n_samples: int = 16, maps_given: bool = True) -> int:
    """Explanations per image (each about one forward + backward for a gradient CAM, more for a
    perturbation method): one per perturbed copy, plus the clean one when maps are not given."""
    return n_samples + (0 if maps_given else 1)


def _targets_for(explain, x, targets):
    """Fixed targets: given ones, else the top-1 class of `explain.model` on x when there is one."""
    model = getattr(explain, "model", None)
    if targets is None and model is None:
        return None
    if model is None:
        return targets
    return resolve_targets(model, x, targets, 32)


def _sensitivities(explain: Callable, images, maps, targets, radius, n_samples, seed, relative) -> np.ndarray:
    """(N, n_samples) ||E(x + d_s) - E(x)||_F (/ ||E(x)||_F when relative), d_s ~ U[-radius, radius]."""
    if not callable(explain):
        raise ValueError(f"explain must be a callable (images, targets) -> maps, e.g. a cams explainer, got {type(explain).__name__}")
    x = np.asarray(images, np.float32)
    if x.ndim != 4 or len(x) == 0:
        raise ValueError(f"images must have shape (N, H, W, C) with N >= 1, got {x.shape}")
    if not radius > 0:
        raise ValueError(f"radius must be > 0 (the L-inf size of the perturbations), got {radius}")
    n_samples = check_count(n_samples, "n_samples")
    t = _targets_for(explain, x, targets)
    base = check_maps(explain(x, t) if maps is None else maps, x).reshape(len(x), -1).astype(np.float64)
    norm = np.linalg.norm(base, axis=1)
    rng = np.random.default_rng(seed)
    out = np.empty((len(x), n_samples))
    for s in range(n_samples):
        noisy = x + rng.uniform(-radius, radius, size=x.shape).astype(np.float32)
        diff = np.linalg.norm(check_maps(explain(noisy, t), x).reshape(len(x), -1) - base, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:, s] = np.where(norm > 0, diff / norm, np.where(diff > 0, np.inf, 0.0)) if relative else diff
    return out


def max_sensitivity(explain: Callable, images, maps=None, targets: Targets = None, radius: float = 0.2,
                    n_samples: int = 16, seed: int = 0, relative: bool = True) -> np.ndarray:
    """Max-Sensitivity (Yeh et al. 2019), Monte-Carlo estimate per image:

        SENS_max(x) = max_{s=1..n} ||E(x + d_s) - E(x)||_F / ||E(x)||_F,  d_s ~ U([-r, r]^{H W C})

    The division by ||E(x)|| is Quantus' default (MaxSensitivity, norm_denominator = fro_norm) and
    makes the score independent of the map's scale; `relative=False` gives the paper's absolute
    form max ||E(x + d) - E(x)||. Cost: `sensitivity_explanations(n_samples, maps is not None)`.

    Args:
        explain: callable (images, targets) -> (N, H, W) maps (any cams explainer).
        images: (N, H, W, C) float inputs.
        maps: E(x) when already computed, else None.
        targets: None (top-1 on the clean image through `explain.model`, else the explainer's
            default on each perturbed copy), an int or N ints.
        radius: L-inf radius r of the perturbations, in input units (Quantus: 0.2).
        n_samples: perturbed copies per image (Quantus: 200).
        seed: seeds the perturbations.
        relative: divide by ||E(x)||_F (an all-zero E(x) scores 0 if E never changes, else inf).
    Returns:
        (N,) float64.
    """
    return _sensitivities(explain, images, maps, targets, radius, n_samples, seed, relative).max(axis=1)


def avg_sensitivity(explain: Callable, images, maps=None, targets: Targets = None, radius: float = 0.2,
                    n_samples: int = 16, seed: int = 0, relative: bool = True) -> np.ndarray:
    """Average sensitivity (Yeh et al. 2019): the mean instead of the max over the same perturbations,

        SENS_avg(x) = 1/n sum_s ||E(x + d_s) - E(x)||_F / ||E(x)||_F   (Quantus' AvgSensitivity).

    Arguments and cost as `max_sensitivity`. Returns (N,) float64.
    """
    return _sensitivities(explain, images, maps, targets, radius, n_samples, seed, relative).mean(axis=1)
