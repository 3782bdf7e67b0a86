"""Shared machinery of every explainer: model checks, batching, normalisation and resizing.

An explainer is called as `maps = explainer(images, targets=None)` and returns float32 maps
(N, H, W) in [0, 1] at the input resolution. Subclasses implement `_explain_batch(x, targets)`
returning raw maps (B, h, w) as a tf.Tensor; resizing and min-max normalisation happen here.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cams.core import model_graph
from cams.core.inputs import Targets, check_images, check_targets


def compiled(fn, input_signature) -> tf.types.experimental.PolymorphicFunction:
    """tf.function(fn) with a fixed signature, traced once per explainer instance.

    TF warns about "frequent retracing" per code object, so creating a few explainers of any
    class in one process (each tracing its own graph once, by design) would trigger a false
    alarm; the fixed input signature already rules out real retracing, so the warning is off.
    """
    function = tf.function(fn, input_signature=input_signature)
    if hasattr(function, "_omit_frequent_tracing_warning"):
        function._omit_frequent_tracing_warning = True
    return function


def seeded_generator(seed=None) -> tf.random.Generator:
    """A TensorFlow random generator: reproducible from `seed`, or from fresh entropy when None."""
    return tf.random.Generator.from_seed(seed) if seed is not None else tf.random.Generator.from_non_deterministic_state()


def noisy_copy(x: tf.Tensor, noise: float, rng: tf.random.Generator) -> tf.Tensor:
    """x + N(0, sigma^2) with sigma = noise * (max x - min x) per image (SmoothGrad, Smilkov et al., 2017)."""
    span = tf.reduce_max(x, axis=[1, 2, 3], keepdims=True) - tf.reduce_min(x, axis=[1, 2, 3], keepdims=True)
    return x + noise * span * rng.normal(tf.shape(x))


def normalize_maps(maps: tf.Tensor) -> tf.Tensor:
    """Per-map min-max normalisation to [0, 1]; a constant map becomes all zeros (never NaN)."""
    maps = tf.cast(maps, tf.float32)
    lo = tf.reduce_min(maps, axis=[1, 2], keepdims=True)
    hi = tf.reduce_max(maps, axis=[1, 2], keepdims=True)
    span = hi - lo
    return tf.where(span > 0, (maps - lo) / tf.where(span > 0, span, 1.0), tf.zeros_like(maps))


def resize_maps(maps: tf.Tensor, size) -> tf.Tensor:
    """Bilinear resize of (N, h, w) maps to (N, H, W)."""
    maps = tf.cast(maps, tf.float32)
    return tf.image.resize(maps[..., None], size, method="bilinear")[..., 0]


def resolve_targets(logits: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """Replace -1 entries of `targets` by the argmax of `logits` (top-1 prediction)."""
    top1 = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.where(targets < 0, top1, targets)


def target_scores(logits: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """S_i = logits[i, targets[i]] in float32."""
    return tf.gather(tf.cast(logits, tf.float32), targets, axis=1, batch_dims=1)


class Explainer:
    """Base class: holds the model and runs batches; subclasses define `_explain_batch`.

    It implements `cams.core.contract.ExplainerContract` (call, explain_tensor, forward_passes, layer).

    `_explain_batch(x, targets)` must be pure TensorFlow: it is compiled together with the
    resizing and normalisation into one tf.function per explainer (traced once per input shape).
    """

    #: images per compiled call; gradient CAMs keep the whole batch on one tape
    batch_size: int = 32
    #: True when `explain_tensor` handles a whole batch in one graph (a SavedModel can serve it)
    exportable: bool = True
    #: the feature layer read (set by LayerExplainer); None for methods that read none
    layer = None

    def __init__(self, model: keras.Model):
        if not isinstance(model, keras.Model):
            raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
        self.model = model
        self.input_shape = model_graph.input_shape(model)
        self.n_classes = model_graph.num_classes(model)
        self._compiled = compiled(self.explain_tensor, self._signature())

    def __call__(self, images, targets: Targets = None) -> np.ndarray:
        x = check_images(images, self.input_shape)
        t = check_targets(targets, len(x), self.n_classes)
        out = [
            self._compiled(tf.constant(x[s : s + self.batch_size]), tf.constant(t[s : s + self.batch_size])).numpy()
            for s in range(0, len(x), self.batch_size)
        ]
        return np.concatenate(out, axis=0).astype(np.float32)

    def explain_tensor(self, x: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """The normalised, resized maps as a tf.Tensor, traceable inside another tf.function.

        Args:
            x: float32 images (B, H, W, C).
            targets: int32 (B,); -1 means the top-1 class.

        Returns:
            float32 (B, H, W) maps in [0, 1]. This is what `__call__` runs, batch by batch; an
            exporter puts it in a serving signature.
        """
        return normalize_maps(resize_maps(self._explain_batch(x, targets), tf.shape(x)[1:3]))

    def forward_passes(self) -> float:
        """Forward passes of the classifier per explained image (the method's cost floor)."""
        return 1.0

    def _explain_batch(self, x: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _signature(self, *extra: tf.TensorSpec):
        """Input signature (images, targets, *extra) for a tf.function that never retraces."""
        _, h, w, c = self.input_shape
        return [tf.TensorSpec((None, h, w, c), tf.float32), tf.TensorSpec((None,), tf.int32), *extra]

class LayerExplainer(Explainer):
    """An explainer that reads the activations A of one feature layer."""

    def __init__(self, model: keras.Model, layer=None):
        super().__init__(model)
        self.layer = model_graph.resolve_layer(model, layer)

    def forward(self, x: tf.Tensor, on_feature=None):
        """(A, logits) in float32-castable tensors; see `cams.model_graph.forward`."""
        return model_graph.forward(self.model, x, self.layer, on_feature=on_feature)
