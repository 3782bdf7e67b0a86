"""Split a Keras classifier at a feature layer: run it with that layer's output replaced.

`cams.model_graph.forward` replays a model and *records* the output A of one layer. Learned
explainers such as L-CAM also need to *change* A before the rest of the model (the "head") sees
it: L-CAM-Fm classifies `a_c * A`. `forward_replaced(model, x, layer, replace)` replays the model
exactly like `model_graph.forward` (same layer resolution through nested models, same removal of
a final softmax, `training=False` everywhere) except that the layers after `layer` receive
`replace(A)` instead of A. The model is never mutated, and no new model is built, so Sequential,
functional and nested models (an Xception base inside a transfer model) all work.

This is a generic extension kept outside `model_graph.py`; it reuses that module's helpers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import keras
import tensorflow as tf

from . import model_graph as mg


@dataclass
class _Replacement:
    layer: keras.layers.Layer
    fn: Callable[[tf.Tensor], tf.Tensor]
    value: Optional[tf.Tensor] = None


def _wrap(op, rep: _Replacement, strip_softmax: bool):
    if mg._is_container(op) and (strip_softmax or mg._contains(op, rep.layer)):
        return lambda x, *a, **k: _replay(op, x, rep, strip_softmax)
    stripped = mg._without_softmax(op) if strip_softmax else None
    fn = stripped if stripped is not None else mg._inject_training(op)
    if op is rep.layer:
        def replaced(*args, **kwargs):
            out = fn(*args, **kwargs)
            rep.value = out
            new = rep.fn(out)
            return tf.cast(new, out.dtype)

        return replaced
    return fn


def _replay(model, inputs, rep: _Replacement, strip_softmax: bool):
    graph = model._functional if isinstance(model, keras.Sequential) else model
    if isinstance(model, keras.Sequential) and graph is None:
        x = inputs
        for i, layer in enumerate(model.layers):
            x = _wrap(layer, rep, strip_softmax and i == len(model.layers) - 1)(x)
        return x
    if not hasattr(graph, "_run_through_graph"):
        raise ValueError(
            f"model {model.name!r} is a subclassed model; it can only be split when it is a "
            "Sequential or functional model (wrap the layers in keras.Model(inputs, outputs))"
        )
    if len(graph.outputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(graph.outputs)} outputs; one is needed")
    out_op = graph.outputs[0]._keras_history.operation
    outputs = graph._run_through_graph(
        inputs, operation_fn=lambda op: _wrap(op, rep, strip_softmax and op is out_op)
    )
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def forward_replaced(model, x, layer, replace: Callable[[tf.Tensor], tf.Tensor]):
    """Run `model` on `x` with the output A of `layer` replaced by `replace(A)`.

    Returns (A, logits): the original activation and the pre-softmax scores computed from the
    replaced activation. `replace(A)` must return a tensor of A's shape; it is cast to A's dtype
    (so a float32 attention mask works in a mixed-precision model). `layer` is a Layer object
    (see `cams.model_graph.resolve_layer`).
    """
    if not isinstance(layer, keras.layers.Layer):
        raise ValueError("layer must be a keras Layer (use cams.model_graph.resolve_layer)")
    rep = _Replacement(layer=layer, fn=replace)
    logits = _replay(model, x, rep, strip_softmax=True)
    if rep.value is None:
        raise ValueError(f"layer {layer.name!r} was not reached while running model {model.name!r}")
    return rep.value, logits
