"""Helpers shared by the metric modules: the model's class probabilities and argument checks.

Probabilities are softmax of the model's pre-softmax logits (see `cams.core.model_graph`).
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cams.core import model_graph
from cams.core.inputs import check_images, check_targets


def probabilities(model: keras.Model, images, batch_size: int = 32) -> np.ndarray:
    """softmax(logits) of `model` on `images`, (N, n_classes) float32, in chunks of `batch_size`."""
    x = check_images(images, model_graph.input_shape(model))
    fn = model_graph.logits_function(model)
    out = [tf.nn.softmax(fn(tf.constant(x[s : s + batch_size])), axis=-1).numpy() for s in range(0, len(x), batch_size)]
    return np.concatenate(out, axis=0)


def targets_and_probs(model, x, targets, batch_size):
    """Checked targets (-1 -> the top-1 class on `x`) and P(target | x_i): ((N,) int, (N,) float32)."""
    probs = probabilities(model, x, batch_size)
    t = check_targets(targets, len(x), probs.shape[1])
    t = np.where(t < 0, probs.argmax(axis=1), t)
    return t, probs[np.arange(len(x)), t]


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
