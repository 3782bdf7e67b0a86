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
from cams.core.target_batch import Bound, TargetBatch, bind_targets
from cams.core.targets import class_output_error, is_target_objects


def compiled(fn, input_signature, jit_compile: bool = False) -> tf.types.experimental.PolymorphicFunction:
    """tf.function(fn) with a fixed signature, traced once per explainer instance.

    TF warns about "frequent retracing" per code object, so creating a few explainers of any
    class in one process (each tracing its own graph once, by design) would trigger a false
    alarm; the fixed input signature already rules out real retracing, so the warning is off.
    With `jit_compile`, XLA compiles the graph (once per input shape: give a fixed batch size).
    """
    function = tf.function(fn, input_signature=input_signature, jit_compile=bool(jit_compile) or None)
    if hasattr(function, "_omit_frequent_tracing_warning"):
        function._omit_frequent_tracing_warning = True
    return function


def seeded_generator(seed=None) -> tf.random.Generator:
    """A TensorFlow random generator: reproducible from `seed`, or from fresh entropy when None.

    Under `tf.config.experimental.enable_op_determinism()` fresh entropy is refused by TensorFlow, so
    seed=None then draws the seed from Python's `random` (seeded by `keras.utils.set_random_seed`).
    """
    if seed is not None:
        return tf.random.Generator.from_seed(seed)
    try:
        return tf.random.Generator.from_non_deterministic_state()
    except RuntimeError:  # op determinism is on
        import random

        return tf.random.Generator.from_seed(random.getrandbits(62))


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


def resolve_targets(logits: tf.Tensor, targets):
    """Replace -1 entries of `targets` by the argmax of `logits` (top-1 prediction); a `Bound` target
    object gets its prediction-dependent defaults (top-1 class, predicted mask) fixed the same way."""
    if isinstance(targets, Bound):
        return targets.resolve(logits)
    top1 = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.where(targets < 0, top1, targets)


def target_scores(logits, targets) -> tf.Tensor:
    """S_i = logits[i, targets[i]] in float32, or the `Bound` target objects' scores of the outputs."""
    if isinstance(targets, Bound):
        return targets.scores(logits)
    return tf.gather(tf.cast(logits, tf.float32), targets, axis=1, batch_dims=1)


def one_target_scores(logits, target) -> tf.Tensor:
    """The scores of one image's target (an int32 scalar class, or a `Bound` of one image) on each
    row of `logits`, e.g. on perturbed copies of that image: logits[:, target] in float32."""
    if isinstance(target, Bound):
        return target.scores(logits)
    return tf.cast(logits, tf.float32)[:, target]


def one_target_probabilities(logits, target) -> tf.Tensor:
    """softmax(logits)[:, target] for one image's class, or a `Bound` target's probabilities."""
    if isinstance(target, Bound):
        return target.probabilities(logits)
    return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)[:, target]


def tile_targets(targets, copies):
    """The targets repeated `copies` times along the batch (tf.tile), class indices or a `Bound`."""
    return targets.tile(copies) if isinstance(targets, Bound) else tf.tile(targets, [copies])


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
    #: True for methods defined for a class index only (CAM's Dense weights, L-CAM's class attention)
    class_targets_only: bool = False

    def __init__(self, model: keras.Model):
        if not isinstance(model, keras.Model):
            raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
        self.model = model
        self.input_shape = model_graph.input_shape(model)
        # class indices need one (N, C) output; other models take target objects (cams.targets)
        self._class_error = class_output_error(model)
        if self._class_error and self.class_targets_only:
            raise ValueError(f"{type(self).__name__} explains a class index only: {self._class_error}")
        self.n_classes = None if self._class_error else model_graph.num_classes(model)
        self._compiled = compiled(self.explain_tensor, self._signature())
        self._by_target_kind = {}

    def use_jit(self, on: bool = True) -> "Explainer":
        """Compile `__call__`'s function with XLA (`jit_compile`; opt-in: once per batch shape); returns self."""
        self._compiled = compiled(self.explain_tensor, self._signature(), jit_compile=on)
        return self

    def checked_targets(self, targets, n: int):
        """int32 (n,) class indices (-1: top-1), or a `TargetBatch` for target objects (`cams.targets`)."""
        if is_target_objects(targets):
            targets = bind_targets(targets, n, self.model)
            if isinstance(targets, TargetBatch):
                if self.class_targets_only:
                    raise ValueError(f"{type(self).__name__} explains a class index only (cams.targets.Class or an int), "
                                     f"not {targets.target!r}; use Grad-CAM or HiResCAM")
                return targets
        if self._class_error:
            raise ValueError(self._class_error)
        return check_targets(targets, n, self.n_classes)

    def target_function(self, batch: TargetBatch, size):
        """`explain_tensor` compiled for one target kind and image size (H, W) (static, as a detector's
        anchors need): (images, parameter tensors) -> maps, cached."""
        key = (*batch.key, tuple(size))
        fn = self._by_target_kind.get(key)
        if fn is None:
            target = batch.target

            def run(x, params):
                return self.explain_tensor(x, Bound(target, params, x))

            fn = compiled(run, [tf.TensorSpec((None, *size, self.input_shape[-1]), tf.float32), batch.specs()])
            self._by_target_kind[key] = fn
        return fn

    def __call__(self, images, targets: Targets = None) -> np.ndarray:
        x = check_images(images, self.input_shape)
        t = self.checked_targets(targets, len(x))
        if isinstance(t, TargetBatch):
            fn = self.target_function(t, x.shape[1:3])
            out = [fn(tf.constant(x[s : s + self.batch_size]), t.tensors(s, s + self.batch_size)).numpy()
                   for s in range(0, len(x), self.batch_size)]
            return np.concatenate(out, axis=0).astype(np.float32)
        out = [
            self._compiled(tf.constant(x[s : s + self.batch_size]), tf.constant(t[s : s + self.batch_size])).numpy()
            for s in range(0, len(x), self.batch_size)
        ]
        return np.concatenate(out, axis=0).astype(np.float32)

    def explain_tensor(self, x: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """The normalised, resized maps as a tf.Tensor, traceable inside another tf.function.

        Args:
            x: float32 images (B, H, W, C).
            targets: int32 (B,); -1 means the top-1 class. Or a `Bound` target object (see
                `target_function`, which compiles this for one kind of target).

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
    """An explainer that reads the activations A of one feature layer.

    A layer with token outputs (N, T, D) is read as its patch grid (N, h, w, D), found from the model
    (`cams.core.tokens`); set `explainer.reshape = fn` (tokens -> grid, linear) to override it.
    """

    #: tokens (N, T, D) -> grid (N, h, w, D) for a token layer; None: found from the model and input size
    reshape = None

    def __init__(self, model: keras.Model, layer=None):
        super().__init__(model)
        self.layer = model_graph.resolve_layer(model, layer)
        if getattr(getattr(self, "method", None), "gradient", False):  # a flat map from a layer the scores never see: say so
            model_graph.check_gradient_reaches(model, self.layer)

    def forward(self, x: tf.Tensor, on_feature=None):
        """(A, logits) in float32-castable tensors (for a multi-output model, its outputs as a dict or list;
        target objects read them); see `cams.model_graph.forward`."""
        return model_graph.forward(self.model, x, self.layer, on_feature=on_feature, all_outputs=True,
                                   reshape=self.reshape)
