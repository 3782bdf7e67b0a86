"""Helpers shared by the metric modules: the model's class probabilities and argument checks.

Probabilities are softmax of the model's pre-softmax logits (see `cams.core.model_graph`).
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cams.core import model_graph
from cams.core.inputs import check_images, check_targets
from cams.core.target_batch import TargetBatch, bind_targets, resolve_batch, target_probabilities
from cams.core.targets import is_target_objects


def probabilities(model: keras.Model, images, batch_size: int = 32) -> np.ndarray:
    """softmax(logits) of `model` on `images`, (N, n_classes) float32, in chunks of `batch_size`."""
    x = check_images(images, model_graph.input_shape(model))
    fn = model_graph.logits_function(model)
    out = [tf.nn.softmax(fn(tf.constant(x[s : s + batch_size])), axis=-1).numpy() for s in range(0, len(x), batch_size)]
    return np.concatenate(out, axis=0)


def logits_and_targets(model, x, targets, batch_size):
    """Pre-softmax logits of `x` ((N, n_classes), chunks of `batch_size`) and the checked targets
    (None -> top-1), from one pass over the images."""
    fn = model_graph.logits_function(model)
    z = np.concatenate([fn(tf.constant(x[s : s + batch_size])).numpy() for s in range(0, len(x), batch_size)])
    t = check_targets(targets, len(x), z.shape[1])
    return z, np.where(t < 0, z.argmax(axis=1), t)


def target_scores(model, batches, targets, softmax: bool = True) -> np.ndarray:
    """Score of `targets[j]` on the j-th image of the concatenated `batches` (an iterable of
    float32 (B, H, W, C) arrays): softmax probability (softmax=True) or pre-softmax logit; (M,) float32."""
    fn, out, start = model_graph.logits_function(model), [], 0
    for batch in batches:
        z = fn(tf.constant(batch, tf.float32))
        z = (tf.nn.softmax(z, axis=-1) if softmax else z).numpy()
        out.append(z[np.arange(len(batch)), targets[start : start + len(batch)]])
        start += len(batch)
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0,), np.float32)


def targets_and_probs(model, x, targets, batch_size):
    """Checked targets (-1 -> the top-1 class on `x`) and P(target | x_i): ((N,) int, (N,) float32).

    Target objects (`cams.targets`) give a `TargetBatch` (its defaults, e.g. a predicted mask, fixed on
    `x`) and their probabilities (see `cams.core.target_batch.target_probabilities`) instead.
    """
    if is_target_objects(targets):
        targets = bind_targets(targets, len(x), model)
        if isinstance(targets, TargetBatch):
            batch = resolve_batch(model, x, targets, batch_size)
            return batch, target_probabilities(model, x, batch, batch_size)
    probs = probabilities(model, x, batch_size)
    t = check_targets(targets, len(x), probs.shape[1])
    t = np.where(t < 0, probs.argmax(axis=1), t)
    return t, probs[np.arange(len(x)), t]


def target_probs(model, images, targets, batch_size) -> np.ndarray:
    """P(targets[i] | images[i]), (N,) float32: softmax of the class for int targets (from
    `targets_and_probs`), the target objects' probabilities for a `TargetBatch`."""
    if isinstance(targets, TargetBatch):
        return target_probabilities(model, images, targets, batch_size)
    return probabilities(model, images, batch_size)[np.arange(len(images)), targets]


def take_targets(targets, index):
    """The targets of images `index` (positions, repeats allowed): int targets or a `TargetBatch`."""
    return targets.take(index) if isinstance(targets, TargetBatch) else np.asarray(targets)[np.asarray(index)]


def resolve_targets(model, x, targets, batch_size) -> np.ndarray:
    """Checked (N,) int targets; None -> the top-1 class on `x` (the only case that runs the model)."""
    if targets is None:
        return targets_and_probs(model, x, None, batch_size)[0]
    return check_targets(targets, len(x), model_graph.num_classes(model))


def drop_channel_axis(a: np.ndarray) -> np.ndarray:
    """(N, H, W, 1) -> (N, H, W); any other shape is returned as is."""
    return a[..., 0] if a.ndim == 4 and a.shape[-1] == 1 else a


def check_maps(maps, images: np.ndarray, name: str = "maps") -> np.ndarray:
    """`maps` as float32 (N, H, W) matching `images` (N, H, W, C); (N, H, W, 1) is accepted.

    Raises ValueError on another shape or on NaN / infinite values.
    """
    m = drop_channel_axis(np.asarray(maps, dtype=np.float32))
    if m.shape != images.shape[:3]:
        raise ValueError(f"{name} must have shape {images.shape[:3]} (N, H, W) to match the images, got {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return m
