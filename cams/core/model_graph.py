"""Find a layer anywhere in a Keras model and run the model so that it returns (A, logits).

The user's model is replayed node by node (Keras' own functional graph walk), with three
interceptions and no mutation of the model:
  * the chosen layer's output A is recorded (and handed to `on_feature`, e.g. `tape.watch`);
  * a nested model that contains the chosen layer is replayed recursively, so layers inside an
    Xception base of a transfer model can be explained;
  * a final softmax (a Softmax/Activation layer, or a layer built with activation="softmax")
    is skipped, so scores are pre-softmax logits;
  * optionally (`after_relu=`), the output of every layer that ends in a plain ReLU (a ReLU or
    Activation("relu") layer, or a layer built with activation="relu", nested models included)
    goes through a function, e.g. Guided Backprop's gate on the backward pass.
"""
from __future__ import annotations

import importlib.metadata
import weakref
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import keras
import tensorflow as tf


class UnsupportedKerasError(RuntimeError):
    """The installed Keras lacks the functional-graph internals the replay relies on."""


def supported_versions() -> str:
    """The Keras and TensorFlow ranges this package declares (its install_requires), e.g. 'keras>=3.10.0,<3.16'."""
    try:
        reqs = importlib.metadata.requires("keras-cams") or []
    except importlib.metadata.PackageNotFoundError:
        reqs = []
    found = [r.replace(" ", "") for r in reqs if r.split(">")[0].split("<")[0].strip() in ("keras", "tensorflow")]
    return " ".join(f'"{r}"' for r in sorted(found)) or '"keras>=3.10.0" "tensorflow>=2.16.2"'


def _internals_error(what: str) -> UnsupportedKerasError:
    return UnsupportedKerasError(
        f"Keras {keras.__version__} (TensorFlow {tf.__version__}) changed {what}, which cams uses to replay a "
        f"model layer by layer; install a supported version: pip install {supported_versions()}")


def _is_container(layer) -> bool:
    return isinstance(layer, keras.Model)


def _output_rank(layer) -> Optional[int]:
    try:
        out = layer.output
    except (AttributeError, ValueError, RuntimeError):
        return None
    if isinstance(out, (list, tuple)):
        return None
    shape = getattr(out, "shape", None)
    return None if shape is None else len(shape)


def iter_layers(model, prefix: str = ""):
    """Yield (qualified_name, layer, path) for every layer, descending into nested models.

    `path` is the list of containers from `model` down to the layer's parent.
    """
    for layer in model.layers:
        name = f"{prefix}{layer.name}"
        yield name, layer, [model]
        if _is_container(layer):
            for sub_name, sub, sub_path in iter_layers(layer, prefix=f"{name}/"):
                yield sub_name, sub, [model] + sub_path


def conv_layer_names(model) -> list[str]:
    """Qualified names of all layers with a 4-D output (candidates for a CAM)."""
    return [
        name
        for name, layer, _ in iter_layers(model)
        if not isinstance(layer, keras.layers.InputLayer) and _output_rank(layer) == 4
    ]


def _last_4d_layer(model):
    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if _is_container(layer):
            found = _last_4d_layer(layer)
            if found is not None:
                return found
        if _output_rank(layer) == 4:
            return layer
    return None


def resolve_layer(model, layer=None):
    """Return the Layer object named by `layer`.

    `layer` may be a name (plain, or qualified as "outer/inner"), a Layer object, or None for the
    last layer with a 4-D output, searched recursively inside nested models.
    """
    if layer is None:
        found = _last_4d_layer(model)
        if found is None:
            raise ValueError(
                f"model {model.name!r} has no layer with a 4-D (N, H, W, C) output; "
                "CAMs need a convolutional feature layer"
            )
        return found
    if isinstance(layer, keras.layers.Layer):
        for _, candidate, _ in iter_layers(model):
            if candidate is layer:
                return layer
        raise ValueError(f"layer {layer.name!r} is not part of model {model.name!r}")
    if not isinstance(layer, str):
        raise ValueError(f"layer must be a name, a keras Layer or None, got {type(layer).__name__}")
    matches = [lyr for name, lyr, _ in iter_layers(model) if name == layer or lyr.name == layer]
    if not matches:
        candidates = conv_layer_names(model)
        raise ValueError(
            f"no layer named {layer!r} in model {model.name!r}; layers with a 4-D output: "
            + (", ".join(candidates) if candidates else "(none)")
        )
    return matches[0]


def _contains(container, target) -> bool:
    return any(lyr is target for _, lyr, _ in iter_layers(container))


def _is_softmax_fn(fn) -> bool:
    return fn is keras.activations.softmax or getattr(fn, "__name__", "") == "softmax"


class _LinearView:
    """Attribute view of a layer whose `activation` reads as linear (no copy, no mutation)."""

    def __init__(self, layer):
        object.__setattr__(self, "_layer", layer)

    def __getattr__(self, name):
        if name == "activation":
            return keras.activations.linear
        return getattr(self._layer, name)


def _is_relu_fn(fn) -> bool:
    return fn is keras.activations.relu or getattr(fn, "__name__", "") == "relu"


def _ends_in_relu(op) -> bool:
    """True when `op`'s output is a plain ReLU of what it computes (max(z, 0), no cap, slope or threshold)."""
    if isinstance(op, keras.layers.ReLU):
        return not op.max_value and not op.negative_slope and not op.threshold
    if isinstance(op, keras.layers.Activation):
        return _is_relu_fn(op.activation)
    return _is_relu_fn(getattr(op, "activation", None))


def _without_softmax(op) -> Optional[Callable]:
    """A callable computing `op` minus its final softmax, or None if `op` ends in no softmax."""
    if isinstance(op, keras.layers.Softmax) or type(op).__name__ == "Softmax":
        return lambda x, *a, **k: x
    if isinstance(op, keras.layers.Activation) and _is_softmax_fn(op.activation):
        return lambda x, *a, **k: x
    if _is_softmax_fn(getattr(op, "activation", None)):
        view = _LinearView(op)

        def linear_call(x, *args, **kwargs):
            # the layer's own call() with self.activation = linear; variables are the layer's own
            return type(op).call(view, tf.cast(x, op.compute_dtype))

        return linear_call
    return None


@dataclass
class _Tap:
    layer: Optional[keras.layers.Layer]
    on_feature: Optional[Callable]
    replace: Optional[Callable] = None
    value: Optional[tf.Tensor] = None
    #: further layers whose outputs are recorded (by id) without being replaced
    extra: tuple = ()
    values: Optional[dict] = None
    #: applied to the output of every layer that ends in a plain ReLU (None: nothing)
    after_relu: Optional[Callable] = None

    def wants(self, op) -> bool:
        return (self.layer is not None and op is self.layer) or any(op is lyr for lyr in self.extra)

    def inside(self, container) -> bool:
        return any(lyr is not None and _contains(container, lyr) for lyr in (self.layer, *self.extra))


def _inject_training(op):
    def call(*args, **kwargs):
        if "training" in getattr(op, "_call_context_args", ()):
            kwargs.setdefault("training", False)
        return op(*args, **kwargs)

    return call


def _with_declared_shape(x, graph):
    """`x` with the static sizes `graph`'s single input declares where `x`'s are unknown (tf.ensure_shape).

    A tf.function traced with (None, None, C) images still runs a model built for (H, W, C) with
    static shapes, as Keras' own layers expect (Keras 3.3's Flatten cannot reshape an input whose
    batch and spatial sizes are all unknown). Anything else (a known but different size, another
    rank, a KerasTensor) is returned as is, for the model to accept or refuse.
    """
    inputs = getattr(graph, "inputs", None)
    if not isinstance(x, tf.Tensor) or not inputs or len(inputs) != 1 or x.shape.rank is None:
        return x
    declared, got = tuple(inputs[0].shape), tuple(x.shape)
    if len(declared) != len(got):
        return x
    pairs = list(zip(got[1:], declared[1:]))
    if any(g is not None and d is not None and g != d for g, d in pairs):
        return x
    if not any(g is None and d is not None for g, d in pairs):
        return x
    return tf.ensure_shape(x, (None, *declared[1:]))


def _replay(model, inputs, tap: _Tap, strip_softmax: bool):
    """Run `model` on `inputs` with the interceptions described in the module docstring."""
    graph = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    if isinstance(model, keras.Sequential) and graph is None:
        # Sequential without a known input shape: walk its layers in order.
        x = inputs
        for i, layer in enumerate(model.layers):
            last = i == len(model.layers) - 1
            x = _wrap(layer, tap, strip_softmax and last, model)(x)
        return x
    if not hasattr(graph, "_run_through_graph"):
        if type(graph).__name__ in ("Functional", "Sequential"):
            raise _internals_error("Functional._run_through_graph")
        raise ValueError(
            f"model {model.name!r} is a subclassed model; CAMs need a Sequential or functional "
            "model so its layers can be reached (wrap the layers in keras.Model(inputs, outputs))"
        )
    if len(graph.outputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(graph.outputs)} outputs; CAMs need one")
    history = getattr(graph.outputs[0], "_keras_history", None)
    if history is None or not hasattr(history, "operation"):
        raise _internals_error("KerasTensor._keras_history.operation")
    out_op = history.operation

    def operation_fn(op):
        return _wrap(op, tap, strip_softmax and op is out_op, model)

    try:
        outputs = graph._run_through_graph(_with_declared_shape(inputs, graph), operation_fn=operation_fn)
    except TypeError as err:
        if "operation_fn" in str(err):
            raise _internals_error("the signature of Functional._run_through_graph") from None
        raise
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def _wrap(op, tap: _Tap, strip_softmax: bool, parent):
    if _is_container(op) and (strip_softmax or tap.inside(op) or tap.after_relu is not None):
        return lambda x, *a, **k: _replay(op, x, tap, strip_softmax)
    stripped = _without_softmax(op) if strip_softmax else None
    fn = stripped if stripped is not None else _inject_training(op)
    if tap.after_relu is not None and stripped is None and _ends_in_relu(op):
        fn = (lambda call: lambda *a, **k: tap.after_relu(call(*a, **k)))(fn)
    if tap.wants(op):
        def record(*args, **kwargs):
            out = fn(*args, **kwargs)
            if tap.on_feature is not None:
                tap.on_feature(out)
            if op is not tap.layer:
                tap.values[id(op)] = out
                return out
            tap.value = out
            if tap.replace is not None:  # the layers after `layer` see replace(A)
                return tf.cast(tap.replace(out), out.dtype)
            return out

        return record
    return fn


def forward(model, x, layer=None, on_feature: Optional[Callable] = None, replace: Optional[Callable] = None,
            after_relu: Optional[Callable] = None):
    """Run `model` on `x` and return (A, logits): the activation of `layer` and pre-softmax scores.

    With `layer=None` only the logits are computed and A is None. `on_feature(A)` is called the
    moment A exists (for `tape.watch`, so the backward pass only crosses the head). With
    `replace`, the layers after `layer` receive `replace(A)` (cast to A's dtype) instead of A,
    e.g. L-CAM-Fm's `a_c * A`; the returned A is still the original activation. With `after_relu`,
    the output of every layer ending in a plain ReLU (ReLU layers, fused activations, nested models)
    goes through `after_relu` (the layer itself runs as it is).
    """
    if isinstance(layer, (list, tuple)):
        return forward_layers(model, x, layer, on_feature=on_feature)
    if replace is not None and layer is None:
        raise ValueError("replace needs a layer whose output it replaces")
    tap = _Tap(layer=layer, on_feature=on_feature, replace=replace, after_relu=after_relu)
    logits = _replay(model, x, tap, strip_softmax=True)
    if layer is not None and tap.value is None:
        raise ValueError(f"layer {layer.name!r} was not reached while running model {model.name!r}")
    return tap.value, logits


def forward_layers(model, x, layers: Sequence, on_feature: Optional[Callable] = None):
    """One pass of `model` on `x` recording several layers: ([A_1, ..., A_n], logits).

    `layers` are Layer objects (see `resolve_layer`), in any order; `on_feature` is called on each
    A_i as it appears (e.g. `tape.watch`). `forward(model, x, [l1, l2])` is the same call.
    """
    layers = list(layers)
    if not layers:
        raise ValueError("layers is empty; give at least one layer")
    tap = _Tap(layer=None, on_feature=on_feature, extra=tuple(layers), values={})
    logits = _replay(model, x, tap, strip_softmax=True)
    missing = [lyr.name for lyr in layers if id(lyr) not in tap.values]
    if missing:
        raise ValueError(f"layer {missing[0]!r} was not reached while running model {model.name!r}")
    return [tap.values[id(lyr)] for lyr in layers], logits


_HEADS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


_IDENTITY = "identity"


def _reaches_input_only_through(output, cut) -> bool:
    """True when every path from the KerasTensor `output` back to the graph's inputs goes through the
    KerasTensor `cut`, so `keras.Model(cut, output)` is a complete graph (no skip connection around `cut`).

    Checked here rather than left to Keras: newer Keras refuses such a cut ("Graph disconnected"), but
    Keras 3.3 builds it and only fails when it is run (a KeyError in `_run_through_graph`).
    """
    stack, seen = [output], set()
    while stack:
        tensor = stack.pop()
        if tensor is cut or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        history = getattr(tensor, "_keras_history", None)
        operation = getattr(history, "operation", None)
        if operation is None:  # a graph input (or a tensor of unknown origin): reached around `cut`
            return False
        node = operation._inbound_nodes[history.node_index]
        parents = list(node.input_tensors)
        if node.is_input or not parents:
            return False
        stack.extend(parents)
    return True


def _cut_after(model, layer):
    """keras.Model(output of `layer` in `model`'s own graph, model output); `_IDENTITY` when that
    output is the model's output; None when no such model can be cut."""
    graph = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    if graph is None or not hasattr(graph, "_nodes_by_depth") or len(getattr(graph, "outputs", [])) != 1:
        return None
    # the layer's node in this graph (a layer reused from a Sequential has one node per graph)
    outputs = [node.output_tensors for nodes in graph._nodes_by_depth.values() for node in nodes if node.operation is layer]
    if len(outputs) != 1 or len(outputs[0]) != 1:
        return None
    if outputs[0][0] is graph.outputs[0]:
        return _IDENTITY
    try:
        if not _reaches_input_only_through(graph.outputs[0], outputs[0][0]):
            return None  # a skip connection around `layer`
        return keras.Model(outputs[0][0], graph.outputs[0], name=f"{model.name}_after_{layer.name}")
    except (ValueError, AttributeError, TypeError, KeyError, IndexError):
        return None


def head_model(model, layer) -> Optional[keras.Model]:
    """The part of `model` after `layer` as a Keras model A -> output, or None where none can be cut.

    Cut with Keras' own graph slicing, `keras.Model(layer output, model output)`, which works when
    the output depends on the input only through that layer. A layer inside nested models is cut
    level by level (the rest of the base, then the rest of the outer model) and the pieces are
    chained in one model. A skip connection around the layer (or a subclassed model) gives None:
    callers then run the whole model with `forward(..., replace=)`. Cached per (model, layer).
    Run it with `forward(head, A)` to get pre-softmax logits.
    """
    cache = _HEADS.setdefault(model, {})
    if id(layer) in cache:
        return cache[id(layer)]
    path = next((p for _, lyr, p in iter_layers(model) if lyr is layer), None)
    pieces = []
    for parent, child in zip(reversed(path or []), [layer] + list(reversed(path or []))[:-1]):
        pieces.append(_cut_after(parent, child))
    head = None
    if pieces and all(p is not None for p in pieces):
        pieces = [p for p in pieces if p is not _IDENTITY]
    if pieces and all(p is not None for p in pieces):
        head = pieces[0]
        if len(pieces) > 1:
            inp = keras.Input(batch_shape=tuple(pieces[0].inputs[0].shape), dtype=pieces[0].inputs[0].dtype)
            out = inp
            for piece in pieces:
                out = piece(out)
            head = keras.Model(inp, out, name=f"{model.name}_head")
    cache[id(layer)] = head
    return head


def input_shape(model) -> Sequence[Optional[int]]:
    """The model's (None, H, W, C) input shape; H and W may be None (UnsupportedKerasError if the Keras
    graph internals `forward` replays are missing: checked here, eagerly, before any tracing)."""
    graph = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    if type(graph).__name__ in ("Functional", "Sequential") and not hasattr(graph, "_run_through_graph"):
        raise _internals_error("Functional._run_through_graph")
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, list):
        if len(shape) != 1:
            raise ValueError(f"model {model.name!r} has {len(shape)} inputs; CAMs need one image input")
        shape = shape[0]
    if shape is None or len(shape) != 4:
        raise ValueError(
            f"model {model.name!r} takes input of shape {shape}; CAMs need images (N, H, W, C)"
        )
    return tuple(shape)


def feature_channels(model, layer) -> int:
    """K, the number of channels of `layer`'s 4-D output (run once on zeros if not recorded)."""
    try:
        k = layer.output.shape[-1]
    except (AttributeError, ValueError, RuntimeError):
        k = None
    if k is None:
        _, h, w, c = input_shape(model)
        if h is None or w is None:
            raise ValueError(f"cannot tell the number of channels of layer {layer.name!r}")
        a, _ = forward(model, tf.zeros((1, h, w, c)), layer)
        k = a.shape[-1]
    return int(k)


def num_classes(model) -> int:
    """Number of output classes (last dimension of the model's output)."""
    shape = model.output_shape
    if isinstance(shape, list):
        raise ValueError(f"model {model.name!r} has several outputs; CAMs need one")
    return int(shape[-1])


_LOGITS_FNS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def logits_function(model):
    """A compiled x -> float32 logits function for `model`, cached per model (never retraces)."""
    fn = _LOGITS_FNS.get(model)
    if fn is None:
        _, h, w, c = input_shape(model)
        fn = tf.function(
            lambda x: tf.cast(forward(model, x)[1], tf.float32),
            input_signature=[tf.TensorSpec((None, h, w, c), tf.float32)],
        )
        _LOGITS_FNS[model] = fn
    return fn
