"""Metrics for saliency maps, one module per role.

- `cams.metrics.fidelity`: how the model's score reacts to the map (faithfulness): Average Drop /
  Increase in Confidence (`ad_ic`, `keep_top`), Feature CAM's explanation maps
  (`explanation_map`, `explanation_map_scores`), causal `insertion_auc` / `deletion_auc`, `mufidelity`.
- `cams.metrics.localisation`: how well the map falls on a ground-truth mask (`pointing_game`,
  `energy_in_mask` alias `energy_pointing_game`, `relevance_mass`, `relevance_rank`).
- `cams.metrics._scoring`: shared helpers; `probabilities` (softmax of the model's pre-softmax
  logits, see `cams.core.model_graph`) is public.
- `cams.metrics.imputation`: ROAD, remove-and-debias with noisy linear imputation (`road`).
- `cams.metrics.robustness`: `max_sensitivity`, `avg_sensitivity` (explanation under input noise).
- `cams.metrics.complexity`: `sparseness` (Gini), `complexity` (entropy).
- `cams.metrics.randomisation`: `random_logit` (map of the target vs a random other class).
- `cams.metrics.similarity`: `spearman`, `spearman_abs`, `ssim`, `hog_pearson` between two sets of maps
  (Adebayo et al.'s sanity checks; the tests themselves are in `cams.sanity`).

New metrics return one score per image (numpy (N,), or (N, P) for ROAD's percentiles), and each
states its cost in forward passes or explanations per image (`*_forward_passes`,
`*_explanations`). Maps are (N, H, W) arrays at the input resolution, as returned by
the explainers.
"""
from cams.metrics._scoring import probabilities
from cams.metrics.fidelity import (
    ad_ic,
    deletion_auc,
    explanation_map,
    explanation_map_scores,
    insertion_auc,
    keep_top,
    mufidelity,
    mufidelity_forward_passes,
)
from cams.metrics.complexity import complexity, complexity_forward_passes, sparseness
from cams.metrics.localisation import (
    energy_in_mask,
    energy_pointing_game,
    pointing_game,
    relevance_mass,
    relevance_rank,
)
from cams.metrics.randomisation import random_logit, random_logit_explanations
from cams.metrics.imputation import noisy_linear_imputation, road, road_forward_passes
from cams.metrics.robustness import avg_sensitivity, max_sensitivity, sensitivity_explanations
from cams.metrics.similarity import hog_pearson, similarities, spearman, spearman_abs, ssim  # noqa: F401

__all__ = [
    "ad_ic",
    "avg_sensitivity",
    "complexity",
    "complexity_forward_passes",
    "deletion_auc",
    "energy_in_mask",
    "energy_pointing_game",
    "explanation_map",
    "explanation_map_scores",
    "insertion_auc",
    "keep_top",
    "max_sensitivity",
    "mufidelity",
    "mufidelity_forward_passes",
    "noisy_linear_imputation",
    "pointing_game",
    "probabilities",
    "random_logit",
    "random_logit_explanations",
    "relevance_mass",
    "relevance_rank",
    "road",
    "road_forward_passes",
    "sensitivity_explanations",
    "sparseness",
]
