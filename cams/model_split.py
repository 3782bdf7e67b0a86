"""Split a Keras classifier at a feature layer: run it with that layer's output replaced.

Learned explainers such as L-CAM need to *change* the activation A of one layer before the rest
of the model (the "head") sees it: L-CAM-Fm classifies `a_c * A`. This is `model_graph.forward`
with `replace=`: the same replay (layer resolution through nested models, final softmax removed,
training=False), never mutating the model, for Sequential, functional and nested models.
"""
from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

from . import model_graph


def forward_replaced(model, x, layer, replace: Callable[[tf.Tensor], tf.Tensor]):
    """Run `model` on `x` with the output A of `layer` replaced by `replace(A)`.

    Returns (A, logits): the original activation and the pre-softmax scores computed from the
    replaced activation. `replace(A)` must return a tensor of A's shape; it is cast to A's dtype
    (so a float32 attention mask works in a mixed-precision model). `layer` is a Layer object
    (see `cams.model_graph.resolve_layer`).
    """
    if not isinstance(layer, keras.layers.Layer):
        raise ValueError("layer must be a keras Layer (use cams.model_graph.resolve_layer)")
    return model_graph.forward(model, x, layer, replace=replace)
