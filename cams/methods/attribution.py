"""Gradient attributions on the input pixels: Gradient x Input, Integrated Gradients, Guided Backprop
and Guided Grad-CAM, with the SmoothGrad option (Smilkov et al., 2017) of averaging over noisy copies.

An attribution a (B, H, W, C) becomes a map by summing over channels: of |a| by default (a map in
[0, 1] like every explainer's), or of a itself with `signed=True`, scaled by its largest absolute
value into [-1, 1] so that 0 stays "no contribution" and the sign says which way a pixel pushes the
target's pre-softmax score S.
"""
from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from cams.core import model_graph
from cams.core.base import (Explainer, noisy_copy, normalize_maps, resolve_targets, seeded_generator, target_scores,
                            tile_targets)
from cams.core.inputs import check_count
from cams.methods.registry import register


def scale_signed(maps: tf.Tensor) -> tf.Tensor:
    """Per-map division by max |M|, so signed maps lie in [-1, 1] with 0 kept at 0 (a zero map stays 0)."""
    peak = tf.reduce_max(tf.abs(maps), axis=[1, 2], keepdims=True)
    return tf.math.divide_no_nan(maps, peak)


def input_gradients(model, x: tf.Tensor, targets: tf.Tensor):
    """(dS/dx float32 (B, H, W, C), resolved targets) for the target logits S of `model` at `x`."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        _, logits = model_graph.forward(model, x, all_outputs=True)
        targets = resolve_targets(logits, targets)
        scores = target_scores(logits, targets)
    return tf.cast(tape.gradient(scores, x), tf.float32), targets


class InputAttribution(Explainer):
    """Base of the input attributions: a = `attribution(x, targets)`, map = sum over channels.

    Args:
        model: a Keras classifier.
        signed: return sum_c a_c scaled into [-1, 1] instead of sum_c |a_c| normalised to [0, 1].
        smooth_samples: n > 0 averages the attribution over n copies x + N(0, (noise (max x - min x))^2)
            (SmoothGrad, Smilkov et al., 2017); 0 (default) uses x alone.
        noise: the SmoothGrad noise level, a fraction of each image's value range.
        seed: seed of the noise (None: a fresh draw every call).
        batch_size: images per compiled call.
    """

    def __init__(self, model: keras.Model, signed: bool = False, smooth_samples: int = 0, noise: float = 0.15,
                 seed: Optional[int] = None, batch_size: int = 32):
        if isinstance(smooth_samples, bool) or int(smooth_samples) != smooth_samples or smooth_samples < 0:
            raise ValueError(f"smooth_samples must be a whole number >= 0, got {smooth_samples!r}")
        if not noise >= 0:  # NaN too
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.signed, self.smooth_samples, self.noise = bool(signed), int(smooth_samples), float(noise)
        self.batch_size = check_count(batch_size, "batch_size")
        self._rng = seeded_generator(seed)
        super().__init__(model)

    @property
    def variables(self) -> list:
        """The noise generator's state (tracked when the explainer is exported)."""
        return [self._rng.state]

    def attribution(self, x: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:  # pragma: no cover - abstract
        """The attribution (B, H, W, C) at x; a -1 target is the top-1 class at x."""
        raise NotImplementedError

    def passes_per_copy(self) -> float:
        """Forward passes one attribution costs (a backward pass counted as one forward)."""
        return 2.0

    def forward_passes(self) -> float:
        return self.passes_per_copy() * max(1, self.smooth_samples) + (self.smooth_samples > 0)

    def smoothed(self, x: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """The attribution of the clean top-1 (or given) targets, averaged over noisy copies if asked."""
        if self.smooth_samples == 0:
            return self.attribution(x, targets)
        _, logits = model_graph.forward(self.model, x, all_outputs=True)
        targets = resolve_targets(logits, targets)  # the clean image's class for every noisy copy
        total = tf.zeros_like(x, tf.float32)
        for _ in tf.range(self.smooth_samples):
            total += self.attribution(noisy_copy(x, self.noise, self._rng), targets)
        return total / float(self.smooth_samples)

    def _explain_batch(self, x: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        a = self.smoothed(x, targets)
        return tf.reduce_sum(a if self.signed else tf.abs(a), axis=-1)

    def explain_tensor(self, x: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """Maps at the input resolution: [0, 1] (sum of |a|), or [-1, 1] with `signed=True`."""
        maps = self._explain_batch(x, targets)
        return scale_signed(maps) if self.signed else normalize_maps(maps)


@register("gradinput", gradient=True, title="Gradient x Input", family="attribution", cost="1 forward + full backward",
          paper="Shrikumar et al., 2016", formula="a = x * dS/dx; M = sum_c abs(a_c) (signed: sum_c a_c)")
class GradientInput(InputAttribution):
    """Gradient x Input (Shrikumar, Greenside, Shcherbina & Kundaje, "Not Just a Black Box", 2016):
    a = x * dS/dx, S the target's pre-softmax logit; for a linear model it is each pixel's exact
    contribution w_i x_i to S. See `InputAttribution` for the options."""

    def attribution(self, x, targets):
        g, _ = input_gradients(self.model, x, targets)
        return tf.cast(x, tf.float32) * g


@register("integratedgradients", gradient=True, title="Integrated Gradients", family="attribution",
          cost="1 + steps forwards + full backwards", paper="Sundararajan et al., ICML 2017",
          formula="a = (x - x') * mean_{k=1..m} dS/dx(x' + ((k - 1/2)/m)(x - x')); sum a = S(x) - S(x')",
          quick={"steps": 8})
class IntegratedGradients(InputAttribution):
    """Integrated Gradients (Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks",
    ICML 2017), their Eq. 3 by the midpoint Riemann sum:

        a = (x - x') * (1/m) sum_{k=1..m} dS/dx (x' + ((k - 1/2)/m) (x - x')),

    so that sum(a) -> S(x) - S(x') (completeness) as m grows. The paper's right sum (k/m) errs by
    O(1/m); the midpoints, at the same m gradients, by O(1/m^2). S is the target's pre-softmax logit
    at the clean image's top-1 class (or the given target) along the whole path.

    Args:
        steps: m, the points on the straight path from the baseline to x.
        baseline: x' as a number (default 0.0, the black image) or an array broadcastable to one image.
        path_batch: path points x images per gradient call (the points of several steps go through the
            model together: max(1, path_batch // batch_size) steps at a time).
        model: see `InputAttribution`.
        signed: see `InputAttribution`.
        smooth_samples: see `InputAttribution`.
        noise: see `InputAttribution`.
        seed: see `InputAttribution`.
        batch_size: see `InputAttribution`.
    """

    def __init__(self, model: keras.Model, steps: int = 64, baseline=0.0, signed: bool = False,
                 smooth_samples: int = 0, noise: float = 0.15, seed: Optional[int] = None, batch_size: int = 32,
                 path_batch: int = 64):
        self.steps = check_count(steps, "steps")
        self.chunk = min(self.steps, max(1, check_count(path_batch, "path_batch") // check_count(batch_size, "batch_size")))
        self.baseline = tf.constant(baseline, tf.float32)
        super().__init__(model, signed=signed, smooth_samples=smooth_samples, noise=noise, seed=seed,
                         batch_size=batch_size)

    def passes_per_copy(self) -> float:
        return 1.0 + 2.0 * self.steps

    def attribution(self, x, targets):
        x = tf.cast(x, tf.float32)
        _, logits = model_graph.forward(self.model, x, all_outputs=True)
        targets = resolve_targets(logits, targets)  # the class at x, kept along the whole path
        start = tf.broadcast_to(self.baseline, tf.shape(x))
        c, n = self.chunk, tf.shape(x)[0]
        tiled_targets = tile_targets(targets, c)
        total = tf.zeros_like(x)
        for first in tf.range(0, self.steps, c):
            k = tf.cast(first + tf.range(c), tf.float32)  # this chunk's steps (0-based); past m they weigh 0
            alpha = (k + 0.5) / float(self.steps)
            points = start[None] + alpha[:, None, None, None, None] * (x - start)[None]  # (c, B, H, W, C)
            g, _ = input_gradients(self.model, tf.reshape(points, tf.concat([[c * n], tf.shape(x)[1:]], 0)), tiled_targets)
            weight = tf.cast(k < float(self.steps), tf.float32)[:, None, None, None, None]
            total += tf.reduce_sum(weight * tf.reshape(g, tf.concat([[c], tf.shape(x)], 0)), axis=0)
        return (x - start) * total / float(self.steps)


@tf.custom_gradient
def positive_gradients_only(y):
    """Identity whose backward pass keeps only positive gradients. Put after a ReLU y = max(z, 0), the
    ReLU's own backward pass then gives `dy [dy > 0] [z > 0]`: Guided Backpropagation's rule
    (Springenberg et al., ICLR-W 2015), with the layer itself run unchanged."""

    def backward(dy):
        return dy * tf.cast(dy > 0, dy.dtype)

    return tf.identity(y), backward


def guided_gradients(model, x: tf.Tensor, targets: tf.Tensor):
    """(Guided Backprop's dS/dx float32 (B, H, W, C), resolved targets): the model replayed with
    `positive_gradients_only` after every ReLU (layers and fused activations, nested models too); the
    model itself is not changed. The forward values, hence the top-1 classes, are the model's own."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        _, logits = model_graph.forward(model, x, after_relu=positive_gradients_only, all_outputs=True)
        targets = resolve_targets(logits, targets)
        scores = target_scores(logits, targets)
    return tf.cast(tape.gradient(scores, x), tf.float32), targets


@register("guidedbackprop", gradient=True, title="Guided Backprop", family="attribution",
          cost="1 forward + full backward", paper="Springenberg et al., ICLR-W 2015",
          formula="dS/dx with each ReLU passing back only positive gradients at positive inputs; M = sum_c abs")
class GuidedBackprop(InputAttribution):
    """Guided Backpropagation (Springenberg, Dosovitskiy, Brox & Riedmiller, "Striving for Simplicity:
    The All Convolutional Net", ICLR-W 2015): the gradient dS/dx where every ReLU's backward pass
    keeps only positive gradients at positive inputs. Adebayo et al. (NeurIPS 2018) found its maps
    barely change when the model's weights are randomised. See `InputAttribution` for the options."""

    def attribution(self, x, targets):
        return guided_gradients(self.model, x, targets)[0]


@register("guidedgradcam", gradient=True, title="Guided Grad-CAM", family="attribution",
          cost="1 forward + full backward + head backward", paper="Selvaraju et al., ICCV 2017",
          formula="M = (sum_c abs(Guided Backprop_c)) * up(Grad-CAM), element-wise")
class GuidedGradCAM(InputAttribution):
    """Guided Grad-CAM (Selvaraju et al., ICCV 2017): Guided Backprop multiplied element-wise by the
    Grad-CAM map upsampled to the input (bilinear, min-max normalised): M = G * up(L_Grad-CAM), with
    G = sum_c |Guided Backprop_c| (signed=True: sum_c Guided Backprop_c, scaled into [-1, 1]).

    Args:
        layer: Grad-CAM's feature layer (a name, a Layer, or None for the last 4-D layer).
        model: see `InputAttribution`.
        signed: see `InputAttribution`.
        smooth_samples: see `InputAttribution` (SmoothGrad averages the guided gradients).
        noise: see `InputAttribution`.
        seed: see `InputAttribution`.
        batch_size: see `InputAttribution`.
    """

    def __init__(self, model: keras.Model, layer=None, signed: bool = False, smooth_samples: int = 0,
                 noise: float = 0.15, seed: Optional[int] = None, batch_size: int = 32):
        from cams.methods.gradient import GradCAM

        self.gradcam = GradCAM(model, layer=layer, batch_size=batch_size)
        self.layer = self.gradcam.layer
        super().__init__(model, signed=signed, smooth_samples=smooth_samples, noise=noise, seed=seed,
                         batch_size=batch_size)

    def forward_passes(self) -> float:
        """Guided Backprop's passes, Grad-CAM's one, and with SmoothGrad one more to fix the class."""
        return super().forward_passes() + 1.0 + (self.smooth_samples > 0)

    def attribution(self, x, targets):
        return guided_gradients(self.model, x, targets)[0]

    def _explain_batch(self, x, targets):
        if self.smooth_samples == 0:
            a, targets = guided_gradients(self.model, x, targets)  # the class both factors explain
        else:
            _, logits = model_graph.forward(self.model, x, all_outputs=True)
            targets = resolve_targets(logits, targets)
            a = self.smoothed(x, targets)
        guided = tf.reduce_sum(a if self.signed else tf.abs(a), axis=-1)
        return guided * self.gradcam.explain_tensor(x, targets)
