"""One forward pass and one tape for several CAMs on the same feature layer.

Grad-CAM, Grad-CAM++, HiResCAM, XGrad-CAM and Layer-CAM differ only in how they combine the
activations A of a layer with g = dS/dA (Grad-CAM++'s higher-order terms are g^2 and g^3 of the same
g); CAM and Eigen-CAM read A (and the logits z) only. So for images x, with targets t (-1: top-1),

    A, z = f(x);   t_i <- argmax z_i where t_i = -1;   S_i = z_i[t_i];   g = dS/dA (one tape)
    L_m = normalise(resize(rule_m(A, g, z, t)))         for every method m on that layer

gives each method's map from one pass of the backbone (the backward pass crosses only the layers
after A), and z gives the predictions: explaining with k methods costs one forward pass, not k + 1.
An explainer takes part when its `shares_pass` is True; it then defines `map_from_pass(A, g, z, t)`
and `needs_gradient` (see `cams.methods.gradient.GradientCAM`, `cams.methods.cam.CAM`,
`cams.methods.eigen.EigenCAM`). The maps equal each explainer's own `explain_tensor`.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

import tensorflow as tf

from cams.core.base import normalize_maps, resize_maps, resolve_targets
from cams.methods.gradient import layer_gradients


def shares_pass(explainer) -> bool:
    """True when `explainer` can take its map from a pass shared with others (`shared_maps`)."""
    return bool(getattr(explainer, "shares_pass", False))


def pass_groups(explainers: Mapping[str, object]) -> List[Dict[str, object]]:
    """The sharing explainers grouped by (model, feature layer, token reshape): one pass per group.

    Args:
        explainers: {method name: explainer}; those whose `shares_pass` is False are left out.

    Returns:
        A list of {name: explainer} groups, in the order of their first member.
    """
    groups: Dict[Tuple, Dict[str, object]] = {}
    for name, e in explainers.items():
        if shares_pass(e):
            key = (id(e.model), id(e.layer), id(getattr(e, "reshape", None)))
            groups.setdefault(key, {})[name] = e
    return list(groups.values())


@tf.autograph.experimental.do_not_convert
def group_pass(group: Mapping[str, object], x: tf.Tensor, targets) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """One forward pass (and one tape when a member needs g) for explainers on the same layer.

    Args:
        group: {name: explainer} sharing model and layer (`pass_groups`).
        x: float32 images (B, H, W, C).
        targets: int32 (B,) class indices, -1 for the top-1 class (or a `Bound` target object).

    Returns:
        (logits z, {name: float32 (B, H, W) maps in [0, 1]}), traceable inside a tf.function.
    """
    first = next(iter(group.values()))
    g = None
    if any(e.needs_gradient for e in group.values()):
        A, g, logits, targets = layer_gradients(first, x, targets)
    else:
        A, logits = first.forward(x)
        targets = resolve_targets(logits, targets)
    A = tf.cast(A, tf.float32)
    size = tf.shape(x)[1:3]
    return logits, {n: normalize_maps(resize_maps(e.map_from_pass(A, g, logits, targets), size)) for n, e in group.items()}


@tf.autograph.experimental.do_not_convert
def shared_maps(explainers: Mapping[str, object], x: tf.Tensor, targets) -> Tuple[Optional[tf.Tensor], Dict[str, tf.Tensor]]:
    """The maps of every sharing explainer in `explainers`, one pass per feature layer.

    Args:
        explainers: {method name: explainer}; only those with `shares_pass` are computed.
        x: float32 images (B, H, W, C).
        targets: as for `group_pass`.

    Returns:
        (the logits of the first pass, or None when no explainer shares; {name: maps}).
    """
    logits, maps = None, {}
    for group in pass_groups(explainers):
        z, m = group_pass(group, x, targets)
        logits = z if logits is None else logits
        maps.update(m)
    return logits, maps
