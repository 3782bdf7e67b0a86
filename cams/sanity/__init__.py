"""Randomisation tests of saliency methods (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

- `cams.sanity.randomise`: a private copy of the model re-initialised block by block, in place, with
  each layer's own seeded initialisers (`Randomiser`: cascading from the logits down, or one block at
  a time); the user's model is never touched.
- `cams.sanity.checks`: the model-parameter randomisation test (`sanity_check`, `SanityCheck`): maps of
  every step compared with the original ones (`cams.metrics.similarity`).
- `cams.sanity.data`: the data randomisation test (`data_randomisation`): the same architecture
  retrained on permuted labels.

    result = cams.sanity.sanity_check(model, images, "gradcam,guidedbackprop", mode="cascading", seed=0)
    result.table()    # method, step, layer, spearman_abs, spearman, ssim, hog
"""
from cams.sanity.checks import COLUMNS, SanityCheck, SanityResult, Step, sanity_check
from cams.sanity.data import data_randomisation, permuted_labels
from cams.sanity.randomise import MODES, Block, Randomiser, group_by_prefix, layer_blocks

__all__ = ["Block", "COLUMNS", "MODES", "Randomiser", "SanityCheck", "SanityResult", "Step", "data_randomisation",
           "group_by_prefix", "layer_blocks", "permuted_labels", "sanity_check"]
