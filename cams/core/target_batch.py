"""Target objects for a batch of images: checked against the model, their parameters stacked into tensors.

`bind_targets(targets, n, model)` turns `targets=` (one target for all images, or one per image)
into class indices (plain `Class` targets, the fast integer path) or a `TargetBatch`: the checked
target and its parameters as arrays (n, ...). Inside a compiled function the batch becomes a
`Bound` (the target, the parameter tensors, the images), whose `scores(outputs)` and
`probabilities(outputs)` the explainers and metrics call. Every `TargetBatch` with the same `key`
runs through the same compiled function, whatever its classes, masks or boxes.
"""
from __future__ import annotations

import weakref
from typing import Union

import keras
import numpy as np
import tensorflow as tf

from cams.core import model_graph
from cams.core.inputs import check_images, check_targets
from cams.core.targets import Class, Target, as_target, is_target_objects, output_info


class TargetBatch:
    """A checked target kind and its per-image parameters, arrays (n, ...)."""

    def __init__(self, target: Target, params: tuple):
        self.target, self.params = target, tuple(np.asarray(p) for p in params)

    @property
    def key(self) -> tuple:
        """The target's static settings and its parameters' per-image shapes and dtypes."""
        return (*self.target.key(), *((p.shape[1:], p.dtype.str) for p in self.params))

    def specs(self) -> tuple:
        return tuple(tf.TensorSpec((None, *p.shape[1:]), tf.as_dtype(p.dtype)) for p in self.params)

    def tensors(self, start: int = 0, stop=None) -> tuple:
        return tuple(tf.constant(p[start:stop]) for p in self.params)

    def take(self, index) -> "TargetBatch":
        """The targets of images `index` (an array of positions; repeats allowed)."""
        return TargetBatch(self.target, tuple(p[np.asarray(index)] for p in self.params))

    def __len__(self) -> int:
        return len(self.params[0]) if self.params else 0


class Bound:
    """A target with its parameter tensors and the images, inside a compiled function.

    Parameters with a batch of 1 are broadcast to the outputs' batch (one image's target scored on
    many perturbed copies, as Score-CAM, RISE and Ablation-CAM do).
    """

    def __init__(self, target: Target, params: tuple, images: tf.Tensor):
        self.target, self.params, self.images = target, tuple(params), images

    def _broadcast(self, outputs) -> tuple:
        b = tf.shape(keras.tree.flatten(outputs)[0])[0]
        return tuple(tf.broadcast_to(p, tf.concat([[b], tf.shape(p)[1:]], 0)) for p in self.params)

    def scores(self, outputs) -> tf.Tensor:
        """(B,) float32 scores S of the target on `outputs` (the model's outputs without a final softmax)."""
        return tf.cast(self.target.score(outputs, self._broadcast(outputs), self.images), tf.float32)

    def probabilities(self, outputs) -> tf.Tensor:
        """(B,) float32 confidences of the target (softmax / sigmoid where the target defines one)."""
        return tf.cast(self.target.probability(outputs, self._broadcast(outputs), self.images), tf.float32)

    def resolve(self, outputs) -> "Bound":
        """The targets with their prediction-dependent defaults (top-1 class, predicted mask) fixed on `outputs`."""
        target = self.target
        return Bound(target.resolved(), target.resolve_params(outputs, self._broadcast(outputs), self.images),
                     self.images)

    def __getitem__(self, i) -> "Bound":
        return Bound(self.target, tuple(p[i : i + 1] for p in self.params), self.images[i : i + 1])

    def tile(self, copies) -> "Bound":
        """The targets repeated `copies` times along the batch (as tf.tile of the images)."""
        return Bound(self.target, tuple(tf.tile(p, tf.concat([[copies], tf.ones_like(tf.shape(p)[1:])], 0))
                                        for p in self.params), self.images)


def _items(targets, n: int) -> list:
    if isinstance(targets, (list, tuple)):
        if len(targets) != n:
            raise ValueError(f"targets: give one target for all images or one per image ({n}), got {len(targets)}")
        return [as_target(t) for t in targets]
    return [as_target(targets)] * n


def bind_targets(targets, n: int, model) -> Union[np.ndarray, TargetBatch]:
    """Check target objects against `model` and batch them for `n` images.

    Args:
        targets: a target object or callable (for every image) or a list of n of them.
        n: the number of images.
        model: the Keras model whose outputs the targets read.
    Returns:
        int32 (n,) class indices when every target is a plain `Class` (-1: the top-1 class), else a
        `TargetBatch`.
    Raises:
        ValueError: one line naming the target and the model's outputs, when they do not fit, or
        when the targets of one call are of different kinds.
    """
    items, info = _items(targets, n), output_info(model)
    checked, seen = [], {}
    for t in items:
        if id(t) not in seen:
            seen[id(t)] = t.check(info, model)
        checked.append(seen[id(t)])
    if all(type(t) is Class for t in checked) and len(info.shapes) == 1:
        return np.array([t.c for t in checked], np.int32)
    first = checked[0]
    for i, t in enumerate(checked):
        if t.key() != first.key():
            raise ValueError(f"targets of one call must be of one kind: image 0 has {first!r}, image {i} has {t!r}; "
                             "explain them in separate calls")
    try:
        params = first.stack([t.params() for t in checked])
    except ValueError as err:
        raise ValueError(f"the {type(first).__name__} targets of one call must have parameters of one shape "
                         f"(e.g. masks of one size): {err}") from None
    return TargetBatch(first, params)


_EVAL_FNS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _evaluate(model, images: np.ndarray, batch: TargetBatch, what: str, batch_size: int) -> np.ndarray:
    """Bound.<what>(outputs) on `images`, (N,) float32, one compiled function per model, target kind and `what`."""
    fns = _EVAL_FNS.setdefault(model, {})
    key = (what, *batch.key, images.shape[1:])
    fn = fns.get(key)
    if fn is None:
        target = batch.target
        h, w, c = images.shape[1:]  # static: a detector's anchors need the size

        def run(x, params):
            _, outputs = model_graph.forward(model, x, all_outputs=True)
            return getattr(Bound(target, params, x), what)(outputs)

        fn = tf.function(run, input_signature=[tf.TensorSpec((None, h, w, c), tf.float32), batch.specs()])
        fns[key] = fn
    out = [fn(tf.constant(images[s : s + batch_size]), batch.tensors(s, s + batch_size)).numpy()
           for s in range(0, len(images), batch_size)]
    return np.concatenate(out).astype(np.float32)


def target_probabilities(model, images: np.ndarray, batch: TargetBatch, batch_size: int = 32) -> np.ndarray:
    """The targets' probabilities (N,) float32 on `images` (what perturbation methods and metrics use)."""
    return _evaluate(model, images, batch, "probabilities", batch_size)


def evaluate_targets(model, images, targets, probabilities: bool = False, batch_size: int = 32) -> np.ndarray:
    """The score S (or with `probabilities`, the confidence) of each image's target, (N,) float32: what
    the explainers explain, for checking a target on a model.

    Args:
        model: the Keras model.
        images: float32 (N, H, W, C).
        targets: target objects (one, or one per image) or class indices.
        probabilities: return the targets' probabilities instead of their scores.
        batch_size: images per compiled call.
    """
    x = check_images(images, model_graph.input_shape(model))
    if isinstance(targets, TargetBatch):
        batch = targets
    elif is_target_objects(targets):
        batch = bind_targets(targets, len(x), model)
    else:
        batch = check_targets(targets, len(x), model_graph.num_classes(model))
    if not isinstance(batch, TargetBatch):  # class indices: the same through the generic path
        batch = TargetBatch(Class(), (np.asarray(batch, np.int32),))
    return _evaluate(model, x, batch, "probabilities" if probabilities else "scores", batch_size)


_RESOLVE_FNS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def resolve_batch(model, images: np.ndarray, batch: TargetBatch, batch_size: int = 32) -> TargetBatch:
    """`batch` with its prediction-dependent defaults (top-1 class, predicted mask) fixed on `images`,
    as explainers do on the clean image: perturbed copies are then scored for the same target."""
    fns = _RESOLVE_FNS.setdefault(model, {})
    key = (*batch.key, images.shape[1:])
    fn = fns.get(key)
    if fn is None:
        target = batch.target
        h, w, c = images.shape[1:]

        def run(x, params):
            _, outputs = model_graph.forward(model, x, all_outputs=True)
            return Bound(target, params, x).resolve(outputs).params

        fn = tf.function(run, input_signature=[tf.TensorSpec((None, h, w, c), tf.float32), batch.specs()])
        fns[key] = fn
    chunks = [fn(tf.constant(images[s : s + batch_size]), batch.tensors(s, s + batch_size))
              for s in range(0, len(images), batch_size)]
    params = tuple(np.concatenate([chunk[i].numpy() for chunk in chunks]) for i in range(len(chunks[0])))
    return TargetBatch(batch.target.resolved(), params)
