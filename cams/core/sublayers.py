"""Every layer of a model, graph node or not: paths, output shapes and the default transformer layer.

A functional model's graph nodes are its `layers`; a layer may own further layers that are no node
(the blocks inside keras_hub's `ViTEncoder`, the stages of a Swin backbone, the layers of a
subclassed model). They are walked here, parents before children, and named by their path from
the model ("vi_t_backbone/vit_encoder/transformer_block_1/layer_norm_1").
"""
from __future__ import annotations

import weakref
from typing import Iterator, List, Optional, Tuple

import keras
import numpy as np

from cams.core.capture import capturing


def has_graph(layer) -> bool:
    """True for a functional or Sequential model, whose `layers` are the nodes of a graph the replay walks."""
    if not isinstance(layer, keras.Model):
        return False
    graph = getattr(layer, "_functional", None) if isinstance(layer, keras.Sequential) else layer
    return isinstance(layer, keras.Sequential) or hasattr(graph, "_run_through_graph")


def children(layer) -> list:
    """The layers `layer` owns directly: a graph model's nodes, or the layers tracked as its attributes."""
    if has_graph(layer):
        return list(layer.layers)
    try:
        return list(layer._flatten_layers(include_self=False, recursive=False))
    except AttributeError:
        return []


def iter_sublayers(model, prefix: str = "", in_graph: bool = True, seen=None) -> Iterator[Tuple[str, object, bool]]:
    """Yield (path, layer, is_node) for every layer under `model`, parents before children.

    `is_node` is True when the layer is a node of a functional graph reached from `model` through
    graph models only (the replay reaches it); False for a layer inside a layer or a subclassed model.
    """
    seen = set() if seen is None else seen
    node = in_graph and has_graph(model)
    for child in children(model):
        if id(child) in seen or isinstance(child, keras.layers.InputLayer):
            continue
        seen.add(id(child))
        path = f"{prefix}{child.name}"
        yield path, child, node
        yield from iter_sublayers(child, f"{path}/", node, seen)


def find(model, name: str) -> List[Tuple[str, object, bool]]:
    """The (path, layer, is_node) entries whose path is `name`, or ends in "/name", or whose layer is named `name`."""
    entries = list(iter_sublayers(model))
    for test in (lambda p, lyr: p == name, lambda p, lyr: p.endswith("/" + name), lambda p, lyr: lyr.name == name):
        found = [e for e in entries if test(e[0], e[1])]
        if found:
            return found
    return []


def attention_layers(model) -> list:
    """(path, layer) of every keras MultiHeadAttention under `model`, in the order they are tracked."""
    return [(p, lyr) for p, lyr, _ in iter_sublayers(model) if isinstance(lyr, keras.layers.MultiHeadAttention)]


def default_transformer_layer(model) -> Optional[object]:
    """The LayerNormalization feeding the model's last MultiHeadAttention (its block's first norm), or None.

    That norm's patch tokens receive gradient through attention, while after the last block a
    class-token-pooled head gives every token but the class token a zero gradient (the layer
    pytorch-grad-cam's ViT tutorial picks). Found as the last LayerNormalization tracked before the
    attention layer (or the child holding it) in the innermost ancestor that has one.
    """
    found = attention_layers(model)
    if not found:
        return None
    path = found[-1][0].split("/")
    by_path = {p: lyr for p, lyr, _ in iter_sublayers(model)}
    for depth in range(len(path) - 1, -1, -1):
        block = by_path.get("/".join(path[:depth])) if depth else model
        kids = children(block)
        on_path = by_path.get("/".join(path[:depth + 1]))
        before = kids[:next((i for i, k in enumerate(kids) if k is on_path), len(kids))]
        norms = [k for k in before if isinstance(k, keras.layers.LayerNormalization)]
        if norms:
            return norms[-1]
    return None


_SHAPES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _shape_of(out):
    if isinstance(out, (list, tuple)):
        return [_shape_of(o) for o in out]
    shape = getattr(out, "shape", None)
    return None if shape is None else tuple(shape)


def output_shapes(model, input_shape) -> List[Tuple[str, object, object]]:
    """(path, layer, output shape) of every layer, in the order the layers finish on one run of zeros.

    One eager call of the model on a (1, H, W, C) array of zeros, with every layer captured (the
    capture hands each output on unchanged). A layer that does not run has no entry. Cached per model.
    """
    cached = _SHAPES.get(model)
    if cached is not None:
        return cached
    entries = [(p, lyr) for p, lyr, _ in iter_sublayers(model) if not isinstance(lyr, keras.Model) or not has_graph(lyr)]
    done = []

    def probe_for(path, layer):
        def probe(call, args, kwargs):
            out = call(*args, **kwargs)
            done.append((path, layer, _shape_of(out)))
            return out
        return probe

    _, h, w, c = input_shape
    with capturing({lyr: probe_for(p, lyr) for p, lyr in entries}):
        model(np.zeros((1, h or 32, w or 32, c or 3), "float32"), training=False)
    _SHAPES[model] = done
    return done


def feature_sublayers(model) -> List[Tuple[str, object, tuple]]:
    """(path, layer, output shape) of the layers that are no graph node and output 4-D maps or (N, T, D)
    tokens, once each, in the order they finish on one run (see `output_shapes`); batch size shown as None."""
    nodes = {id(lyr) for _, lyr, node in iter_sublayers(model) if node}
    nodes |= {id(c) for _, mha in attention_layers(model) for c in children(mha)}  # query/key/value projections
    shape = getattr(model, "input_shape", None) or (None,) + tuple(
        list((getattr(model, "_build_shapes_dict", None) or {}).values())[0])[1:]
    found, seen = [], set()
    for path, lyr, out in output_shapes(model, shape):
        if id(lyr) in nodes or id(lyr) in seen or not isinstance(out, tuple) or len(out) not in (3, 4):
            continue
        seen.add(id(lyr))
        found.append((path, lyr, (None, *out[1:])))
    return found
