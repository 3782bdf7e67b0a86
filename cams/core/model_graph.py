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
A layer that is no graph node (inside a layer such as keras_hub's ViTEncoder, or inside a subclassed
model, which runs by its own `call`) is captured while the model runs instead (`cams.core.capture`),
and a token output (N, T, D) is read as its patch grid (N, h, w, D) (`cams.core.tokens`).
"""
from __future__ import annotations

import importlib.metadata
import weakref
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import keras
import tensorflow as tf

from cams.core import capture, sublayers, tokens


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


def _default_layer(model):
    """For a transformer, the first norm of its last attention block; else the last 4-D graph node; else
    the last layer (any depth) to finish whose output is 4-D or a token grid."""
    found = sublayers.default_transformer_layer(model)
    if found is None and sublayers.has_graph(model):
        found = _last_4d_layer(model)
    if found is not None:
        return found
    size = input_shape(model)[1:3]
    for name, lyr, shape in reversed(sublayers.output_shapes(model, input_shape(model))):
        if not isinstance(shape, tuple) or len(shape) not in (3, 4) or isinstance(lyr, keras.Model):
            continue
        try:
            if len(shape) == 3:
                tokens.token_grid(shape[1], (size[0] or 32, size[1] or 32), model, name)
            return lyr
        except (ValueError, TypeError):
            continue
    raise ValueError(
        f"model {model.name!r} has no layer with a 4-D (N, H, W, C) output or a token grid; "
        "CAMs need a convolutional feature layer or transformer tokens")


def resolve_layer(model, layer=None):
    """Return the Layer object named by `layer`.

    `layer` may be a name (plain, qualified as "outer/inner", or the path of a layer inside a layer,
    "vi_t_backbone/vit_encoder/transformer_block_1/layer_norm_1", or its end), a Layer object at any
    depth, a callable model -> name or Layer that picks it, or None for the default: the last layer
    with a 4-D output (searched recursively inside nested models); for a transformer, the first
    LayerNormalization of its last attention block; else the last layer with a token-grid output.
    """
    if layer is None:
        return _default_layer(model)
    if callable(layer) and not isinstance(layer, keras.layers.Layer):
        return resolve_layer(model, layer(model))
    if isinstance(layer, keras.layers.Layer):
        for _, candidate, _ in sublayers.iter_sublayers(model):
            if candidate is layer:
                return layer
        raise ValueError(f"layer {layer.name!r} is not part of model {model.name!r}")
    if not isinstance(layer, str):
        raise ValueError(f"layer must be a name, a keras Layer, a callable or None, got {type(layer).__name__}")
    matches = [lyr for name, lyr, _ in iter_layers(model) if name == layer or lyr.name == layer]
    if matches:
        return matches[0]
    found = sublayers.find(model, layer)
    if len({id(e[1]) for e in found}) > 1:
        raise ValueError(f"{len(found)} layers of model {model.name!r} match {layer!r}; give one path: "
                         + ", ".join(e[0] for e in found[:6]) + (", ..." if len(found) > 6 else ""))
    if found:
        return found[0][1]
    candidates = conv_layer_names(model)
    raise ValueError(
        f"no layer named {layer!r} in model {model.name!r}; layers with a 4-D output: "
        + (", ".join(candidates) if candidates else "(none)") + " (`cams layers --model FILE` lists every layer)"
    )


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
    #: return every output of a multi-output model (its own structure, dict or list) instead of refusing it
    all_outputs: bool = False
    #: token layers: a user's tokens -> grid callable (None: found by `cams.core.tokens.token_grid`)
    reshape: Optional[Callable] = None
    #: the model and its (H, W) input size, for token grids
    model: object = None
    size: tuple = (None, None)

    def wants(self, op) -> bool:
        return (self.layer is not None and op is self.layer) or any(op is lyr for lyr in self.extra)

    def inside(self, container) -> bool:
        return any(lyr is not None and _contains(container, lyr) for lyr in (self.layer, *self.extra))

    def seen(self, op, out):
        """Record `op`'s output as a feature (a grid for tokens) and return what the next layers receive."""
        if isinstance(out, (list, tuple)):  # a block returning (tokens, attention): the first is the feature
            return type(out)((self.seen(op, out[0]), *out[1:]))
        grid = _grid_for(out, self.reshape, self.model, self.size, op.name)
        target = op is self.layer
        A, out_next = _as_feature(out, grid, self.on_feature, self.replace if target else None)
        if target:
            self.value = A
        else:
            self.values[id(op)] = A
        return out_next


def _grid_for(out, reshape, model, size, name):
    """The token -> grid map for `out`: the user's `reshape`, a TokenGrid for (N, T, D) tokens, else None."""
    if reshape is not None:
        return tokens.CustomGrid(reshape)
    shape = getattr(out, "shape", None)
    if shape is None or len(shape) != 3 or shape[1] is None:
        return None
    if size[0] is None or size[1] is None:
        raise ValueError(f"layer {name!r} outputs tokens {tuple(shape)}; the input's height and width must be known "
                         "to arrange them in a grid (build the model with a fixed image size) or give reshape=")
    return tokens.token_grid(int(shape[1]), size, model, name)


def _as_feature(out, grid, on_feature, replace):
    """(A, what the next layers receive) for a layer output `out`.

    4-D output: A = out, watched, and the next layers see replace(A) (or A). Tokens: A = R(out), the
    grid; the next layers see out + R^T(replace(A) - stop_gradient(A)), which equals out (or out with
    the patch tokens replaced) and makes dS/dA = R(dS/dout) (see `cams.core.tokens`).
    """
    if grid is None:
        if on_feature is not None:
            on_feature(out)
        return out, (out if replace is None else tf.cast(replace(out), out.dtype))
    A = grid.to_grid(out)
    if on_feature is not None:
        on_feature(A)
    if on_feature is None and replace is None:
        return A, out
    new = A if replace is None else tf.cast(replace(A), A.dtype)
    return A, out + tf.cast(grid.adjoint(new - tf.stop_gradient(A), out), out.dtype)


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
        return _call_subclassed(model, inputs, tap, strip_softmax)
    if len(graph.outputs) != 1 and not tap.all_outputs:
        raise ValueError(f"model {model.name!r} has {len(graph.outputs)} outputs; CAMs need one")
    histories = [getattr(out, "_keras_history", None) for out in graph.outputs]
    if any(h is None or not hasattr(h, "operation") for h in histories):
        raise _internals_error("KerasTensor._keras_history.operation")
    out_ops = [h.operation for h in histories]

    def operation_fn(op):
        return _wrap(op, tap, strip_softmax and any(op is out for out in out_ops), model)

    try:
        outputs = graph._run_through_graph(_with_declared_shape(inputs, graph), operation_fn=operation_fn)
    except TypeError as err:
        if "operation_fn" in str(err):
            raise _internals_error("the signature of Functional._run_through_graph") from None
        raise
    if len(graph.outputs) != 1:
        return outputs  # all_outputs: the model's own output structure
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def _each_tensor(fn: Callable, out):
    """fn applied to every tensor of a layer's output (one tensor, or a list / dict of them)."""
    return tf.nest.map_structure(fn, out)


def _call_subclassed(model, inputs, tap: _Tap, strip_softmax: bool):
    """Run a subclassed model by its own `call`; its layers are reached by capture (`cams.core.capture`).

    Its last tracked layer, when it ends in a softmax, runs without it (scores are logits); with
    `tap.after_relu`, every tracked layer ending in a plain ReLU has its output passed through it.
    """
    probes = {}
    if tap.after_relu is not None:
        for _, lyr, _ in sublayers.iter_sublayers(model):
            if _ends_in_relu(lyr):
                probes[lyr] = lambda call, a, k: _each_tensor(tap.after_relu, call(*a, **k))
    stripped = _without_softmax(model.layers[-1]) if strip_softmax and model.layers else None
    if stripped is not None:
        probes[model.layers[-1]] = lambda call, a, k: stripped(*a, **k)
    with capture.capturing(probes):
        return model(inputs, training=False)


def _wrap(op, tap: _Tap, strip_softmax: bool, parent):
    if _is_container(op) and (strip_softmax or tap.inside(op) or tap.after_relu is not None):
        return lambda x, *a, **k: _replay(op, x, tap, strip_softmax)
    stripped = _without_softmax(op) if strip_softmax else None
    fn = stripped if stripped is not None else _inject_training(op)
    if tap.after_relu is not None and stripped is None and _ends_in_relu(op):
        fn = (lambda call: lambda *a, **k: _each_tensor(tap.after_relu, call(*a, **k)))(fn)
    if tap.wants(op):
        return lambda *args, **kwargs: tap.seen(op, fn(*args, **kwargs))
    return fn


def _image_converter(model):
    """A keras_hub task's image converter (resizing, rescaling, normalisation), or None."""
    return getattr(getattr(model, "preprocessor", None), "image_converter", None)


def _run(model, x, tap: _Tap, layers: Sequence, extra_probes: Optional[dict] = None):
    """`_replay` with each of `layers` that is no graph node captured while the model runs."""
    converter = _image_converter(model)
    if converter is not None:
        x = converter(x)
    if layers:
        nodes = {id(lyr) for _, lyr, node in sublayers.iter_sublayers(model) if node}
        probes = {lyr: (lambda op: lambda call, a, k: tap.seen(op, call(*a, **k)))(lyr)
                  for lyr in layers if id(lyr) not in nodes}
        declared = input_shape(model)[1:3]
        tap.model = model
        tap.size = tuple(d if d is not None else s for d, s in zip(declared, x.shape[1:3]))
    else:
        probes = {}
    with capture.capturing({**probes, **(extra_probes or {})}):
        return _replay(model, x, tap, strip_softmax=True)


@tf.autograph.experimental.do_not_convert
def forward(model, x, layer=None, on_feature: Optional[Callable] = None, replace: Optional[Callable] = None,
            after_relu: Optional[Callable] = None, all_outputs: bool = False, reshape: Optional[Callable] = None):
    """Run `model` on `x` and return (A, logits): the activation of `layer` and pre-softmax scores.

    `layer` may be a graph node (the graph is replayed) or any layer inside a layer or a subclassed
    model (its output is captured while the model runs, `cams.core.capture`). A token output
    (N, T, D) is returned as its patch grid (N, h, w, D) (`cams.core.tokens`; `reshape`, a
    tokens -> grid callable, overrides it), and `on_feature`/`replace` act on that grid. A keras_hub
    task with a preprocessor runs its image converter on `x` first, as `predict` does.

    With `layer=None` only the logits are computed and A is None. `on_feature(A)` is called the
    moment A exists (for `tape.watch`, so the backward pass only crosses the head). With
    `replace`, the layers after `layer` receive `replace(A)` (cast to A's dtype) instead of A,
    e.g. L-CAM-Fm's `a_c * A`; the returned A is still the original activation. With `after_relu`,
    the output of every layer ending in a plain ReLU (ReLU layers, fused activations, nested models)
    goes through `after_relu` (the layer itself runs as it is). With `all_outputs`, a model with several
    outputs is run too and the second value is its own output structure (a dict or a list, each output
    that ends in a softmax taken before it); a single-output model returns its logits as without it.
    """
    if isinstance(layer, (list, tuple)):
        return forward_layers(model, x, layer, on_feature=on_feature, all_outputs=all_outputs)
    if replace is not None and layer is None:
        raise ValueError("replace needs a layer whose output it replaces")
    tap = _Tap(layer=layer, on_feature=on_feature, replace=replace, after_relu=after_relu, all_outputs=all_outputs,
               reshape=reshape)
    logits = _run(model, x, tap, [layer] if layer is not None else [])
    if layer is not None and tap.value is None:
        raise ValueError(f"layer {layer.name!r} was not reached while running model {model.name!r}")
    return tap.value, logits


@tf.autograph.experimental.do_not_convert
def forward_layers(model, x, layers: Sequence, on_feature: Optional[Callable] = None, all_outputs: bool = False):
    """One pass of `model` on `x` recording several layers: ([A_1, ..., A_n], logits).

    `layers` are Layer objects (see `resolve_layer`), in any order; `on_feature` is called on each
    A_i as it appears (e.g. `tape.watch`). `forward(model, x, [l1, l2])` is the same call.
    """
    layers = list(layers)
    if not layers:
        raise ValueError("layers is empty; give at least one layer")
    tap = _Tap(layer=None, on_feature=on_feature, extra=tuple(layers), values={}, all_outputs=all_outputs)
    logits = _run(model, x, tap, layers)
    missing = [lyr.name for lyr in layers if id(lyr) not in tap.values]
    if missing:
        raise ValueError(f"layer {missing[0]!r} was not reached while running model {model.name!r}")
    return [tap.values[id(lyr)] for lyr in layers], logits


def _scores_forced(call, args, kwargs):
    """Run a MultiHeadAttention with explicit attention probabilities (its softmax layer runs)."""
    asked = kwargs.get("return_attention_scores", False)
    try:
        out = call(*args, **{**kwargs, "return_attention_scores": True})
    except ValueError as err:
        if "flash attention" in str(err).lower():
            raise ValueError("attention methods read the attention probabilities, which flash attention never forms; "
                             "call keras.config.disable_flash_attention() (or build the layer with flash_attention=False)") from None
        raise
    return out if asked else out[0]


@tf.autograph.experimental.do_not_convert
def forward_attention(model, x, on_attention: Optional[Callable] = None):
    """Run `model` on `x` recording the attention probabilities of its keras MultiHeadAttention layers.

    Each MultiHeadAttention runs its explicit path (softmax of the scaled scores, the same values as its
    fused kernel); its softmax output P (B, heads, T, S) is recorded, in the order the layers run, and
    handed to `on_attention` (e.g. `tape.watch`) before anything uses it. The model is not changed
    (`cams.core.capture`).

    Returns:
        ([P_1, ..., P_L], logits), the logits pre-softmax as for `forward`.
    """
    attention = [lyr for _, lyr in sublayers.attention_layers(model)]
    if not attention:
        raise ValueError(f"model {model.name!r} has no keras MultiHeadAttention layer; attention methods need one "
                         "(windowed or custom attention, as in Swin, is not read)")
    probs = []

    def record(call, args, kwargs):
        p = call(*args, **kwargs)
        if on_attention is not None:
            on_attention(p)
        probs.append(p)
        return p

    probes = {lyr: _scores_forced for lyr in attention}
    probes.update({lyr._softmax: record for lyr in attention})
    logits = _run(model, x, _Tap(layer=None, on_feature=None), [], extra_probes=probes)
    if not probes or not probs:
        raise ValueError(f"no attention layer of model {model.name!r} ran")
    return probs, logits


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
    if shape is None and not sublayers.has_graph(model):  # a subclassed model: the shape it was built with
        built = list((getattr(model, "_build_shapes_dict", None) or {}).values())
        shape = (None, *tuple(built[0])[1:]) if len(built) == 1 and built[0] is not None else None
        if shape is None:
            raise ValueError(f"subclassed model {model.name!r} has not been built; call it once on a batch of "
                             "images (model(x)) or model.build((None, H, W, C)) before explaining it")
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
    try:
        shape = model.output_shape
    except AttributeError:  # a subclassed model: run it once on zeros
        shape = tuple(subclassed_outputs(model)[0].shape)
    if isinstance(shape, list):
        raise ValueError(f"model {model.name!r} has several outputs; CAMs need one")
    return int(shape[-1])


_CHECKED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def check_gradient_reaches(model, layer, reshape: Optional[Callable] = None) -> None:
    """Raise a one-line ValueError when no output score has any gradient with respect to `layer`'s map.

    Checked for token layers and layers inside layers (graph nodes with 4-D outputs are skipped): one
    eager pass on random images, d(sum of scores)/dA. The typical case is a transformer layer after
    the last attention block, whose patch tokens a class-token head never reads: every gradient map
    would be flat. Cached per (model, layer).
    """
    done = _CHECKED.setdefault(model, set())
    if id(layer) in done or _output_rank(layer) == 4:
        return
    _, h, w, c = input_shape(model)
    x = tf.random.stateless_uniform((1, h or 32, w or 32, c), seed=(0, 1))
    try:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            A, out = forward(model, x, layer, on_feature=tape.watch, reshape=reshape, all_outputs=True)
            total = tf.add_n([tf.reduce_sum(tf.cast(o, tf.float32)) for o in keras.tree.flatten(out)])
    except ValueError:  # e.g. tokens that need the user's reshape: the explainer says so when it runs
        return
    g = tape.gradient(total, A)
    if g is None or not bool(tf.reduce_any(tf.not_equal(g, 0.0))):
        raise ValueError(
            f"the model's scores have zero gradient with respect to layer {layer.name!r} (for a transformer: a layer "
            f"after the last attention block, whose patch tokens a class-token head never reads); every gradient map "
            f"would be flat: pick an earlier layer, e.g. the default {resolve_layer(model).name!r} (layer=None)")
    done.add(id(layer))


def subclassed_outputs(model) -> list:
    """[KerasTensor (None, ...)] standing for a subclassed model's output, found by running it once on zeros."""
    _, h, w, c = input_shape(model)
    out = forward(model, tf.zeros((1, h or 32, w or 32, c)))[1]
    return [keras.KerasTensor((None, *tuple(o.shape)[1:]), dtype=o.dtype) for o in keras.tree.flatten(out)]


_LOGITS_FNS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def logits_function(model):
    """A compiled x -> float32 logits function for `model`, cached per model (never retraces)."""
    fn = _LOGITS_FNS.get(model)
    if fn is None:
        _, h, w, c = input_shape(model)
        fn = tf.function(
            lambda x: tf.cast(forward(model, x)[1], tf.float32),
            input_signature=[tf.TensorSpec((None, h, w, c), tf.float32)], autograph=False,
        )
        _LOGITS_FNS[model] = fn
    return fn
