"""Metrics for saliency maps, one module per role.

- `cams.metrics.fidelity`: how the model's score reacts to the map (faithfulness): Average Drop /
  Increase in Confidence (`ad_ic`, `keep_top`), Feature CAM's explanation maps
  (`explanation_map`, `explanation_map_scores`), causal `insertion_auc` / `deletion_auc`.
- `cams.metrics.localisation`: how well the map falls on a ground-truth mask (`pointing_game`,
  `energy_in_mask` alias `energy_pointing_game`).
- `cams.metrics._scoring`: shared helpers; `probabilities` (softmax of the model's pre-softmax
  logits, see `cams.core.model_graph`) is public.

Robustness, complexity and randomisation (sanity-check) metrics belong in modules of their own
beside these, re-exported here. Maps are (N, H, W) arrays at the input resolution, as returned by
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
)
from cams.metrics.localisation import energy_in_mask, energy_pointing_game, pointing_game

__all__ = [
    "ad_ic",
    "deletion_auc",
    "energy_in_mask",
    "energy_pointing_game",
    "explanation_map",
    "explanation_map_scores",
    "insertion_auc",
    "keep_top",
    "pointing_game",
    "probabilities",
]
