"""CAM (Zhou et al., CVPR 2016): the class activation map of a global-average-pooling head.

For a model ending in  A -> GlobalAveragePooling2D -> Dense(W, b)  (a softmax and Dropout layers
may follow or sit between), the logit of class c is S_c = sum_k W_kc mean_ij A^k_ij + b_c, so
M_c = sum_k W_kc A^k is exactly the spatial map whose mean (plus b_c) is S_c. No gradient is
needed: the weights are read from the Dense kernel.
"""
from __future__ import annotations

from typing import List

import keras
import tensorflow as tf

from cams.core import model_graph
from cams.core.base import LayerExplainer, resolve_targets
from cams.core.inputs import check_count
from cams.methods.registry import register

_PASS_THROUGH = (keras.layers.Dropout, keras.layers.GaussianNoise, keras.layers.GaussianDropout)


def _is_softmax(op) -> bool:
    if isinstance(op, keras.layers.Softmax):
        return True
    return isinstance(op, keras.layers.Activation) and getattr(op.activation, "__name__", "") == "softmax"


def last_operations(model, count: int = 6) -> List:
    """Up to `count` layers of `model` from its output backwards, along single-input layers.

    A nested model met on the way is entered (its own last layers come next), so an Xception base
    built with pooling="avg" reads as [..., Dense, GlobalAveragePooling2D, block14_sepconv2_act].
    """
    graph = model._functional if isinstance(model, keras.Sequential) else model
    if graph is None or not hasattr(graph, "outputs"):  # Sequential without an input shape
        return list(reversed(model.layers))[:count]
    found, tensor = [], graph.outputs[0]
    while len(found) < count:
        op, node_index, _ = tensor._keras_history
        if isinstance(op, keras.layers.InputLayer):
            break
        found.extend(last_operations(op, count - len(found)) if isinstance(op, keras.Model) else [op])
        inputs = op._inbound_nodes[node_index].input_tensors
        if len(inputs) != 1:
            break
        tensor = inputs[0]
    return found[:count]


def gap_dense_head(model):
    """(feature layer, Dense layer) of a model whose head is GAP -> Dense; a ValueError otherwise."""
    ops = last_operations(model)
    names = " <- ".join(f"{type(op).__name__} {op.name!r}" for op in ops[:4])
    while ops and _is_softmax(ops[0]):
        ops = ops[1:]
    dense = ops[0] if ops else None
    rest = [op for op in ops[1:] if not isinstance(op, _PASS_THROUGH)]
    activation = getattr(getattr(dense, "activation", None), "__name__", "")
    if (
        not isinstance(dense, keras.layers.Dense)
        or activation not in ("linear", "softmax")
        or len(rest) < 2
        or not isinstance(rest[0], keras.layers.GlobalAveragePooling2D)
        or getattr(rest[0], "keepdims", False)
    ):
        raise ValueError(
            f"CAM needs a head feature layer -> GlobalAveragePooling2D -> Dense (linear or softmax); model "
            f"{model.name!r} ends in {names or 'no layers'} (from the output back). Use Grad-CAM or "
            "HiResCAM for other heads"
        )
    return rest[1], dense


@register("cam", gradient=False, gap_dense_head=True, title="CAM", family="activation", cost="1 forward (no backward)",
          paper="Zhou et al., CVPR 2016", formula="M = sum_k W_kc A^k (W: the Dense kernel after global average pooling)")
class CAM(LayerExplainer):
    """CAM (Zhou, Khosla, Lapedriza, Oliva & Torralba, "Learning Deep Features for Discriminative
    Localization", CVPR 2016).

    M_c = sum_k W_kc A^k, with W the kernel of the Dense layer that follows the global average
    pooling of the feature layer A; min-max normalised and bilinearly resized (no ReLU, as in the
    paper). Only models whose head is A -> GlobalAveragePooling2D -> Dense have this map; any other
    head is a ValueError naming the layers found. Gradient-free: one forward pass.

    Args:
        model: a Keras classifier ending in GlobalAveragePooling2D -> Dense (optionally softmax).
        layer: None (the layer feeding the pooling) or that same layer, by name or object.
        batch_size: images per compiled call.
    """

    class_targets_only = True  # the Dense weights of one class

    def __init__(self, model: keras.Model, layer=None, batch_size: int = 32):
        feature, self.dense = gap_dense_head(model)
        if layer is not None:
            chosen = model_graph.resolve_layer(model, layer)
            if chosen is not feature:
                raise ValueError(
                    f"CAM reads the layer feeding the global average pooling, {feature.name!r}, not {chosen.name!r}; "
                    "leave layer=None (or use Grad-CAM for other layers)"
                )
        self.batch_size = check_count(batch_size, "batch_size")
        super().__init__(model, feature)

    #: gradient-free: a pass shared with other methods on the layer gives the map (`cams.methods.shared`)
    shares_pass, needs_gradient = True, False

    def map_from_pass(self, A: tf.Tensor, g, logits, targets) -> tf.Tensor:
        """The raw map (B, h, w) from a shared pass's A and logits (g is not used)."""
        return self._explain_batch(None, targets, (A, logits))

    def _explain_batch(self, x: tf.Tensor, targets: tf.Tensor, passed=None) -> tf.Tensor:
        A, logits = passed or self.forward(x)
        targets = resolve_targets(logits, targets)
        W = tf.gather(tf.cast(self.dense.kernel, tf.float32), targets, axis=1)  # (K, B)
        return tf.einsum("bhwk,kb->bhw", tf.cast(A, tf.float32), W)
