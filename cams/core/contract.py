"""The explainer contract: what every registered method offers, whatever its family.

    maps = explainer(images, targets=None)     # (N, H, W, C) floats -> float32 (N, H, W) in [0, 1]
    maps = explainer.explain_tensor(x, t)      # the same as a tf.Tensor, inside another tf.function
    explainer.forward_passes()                 # classifier forward passes per image (the cost floor)
    explainer.layer                            # the feature layer read, or None (RISE, Saliency)
    explainer.exportable                       # True when explain_tensor is one graph (SavedModel)

`cams.core.base.Explainer` implements it for the TensorFlow explainers; Feature CAM implements it
on its own (its edge maps and combination run on arrays, so it is not exportable).
"""
from __future__ import annotations

from typing import Any, List, Protocol, runtime_checkable

#: the members of the contract, in the order they are reported missing
MEMBERS = ("__call__", "explain_tensor", "forward_passes", "layer", "exportable")


@runtime_checkable
class ExplainerContract(Protocol):
    """An explainer as command lines, metrics, exporters and pipelines use it."""

    layer: Any
    exportable: bool

    def __call__(self, images, targets=None):
        """Maps (N, H, W) float32 in [0, 1] at the input resolution; targets None = top-1 class."""

    def explain_tensor(self, x, targets):
        """Maps as a tf.Tensor for float32 images (B, H, W, C) and int32 targets (B,) (-1 = top-1)."""

    def forward_passes(self) -> float:
        """Forward passes of the classifier per explained image."""


def missing_members(cls: type) -> List[str]:
    """The members of the contract that class `cls` lacks (an empty list when it satisfies it)."""
    return [name for name in MEMBERS if not hasattr(cls, name)]
