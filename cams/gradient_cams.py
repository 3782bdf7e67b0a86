"""Gradient CAMs: Grad-CAM, Grad-CAM++ and Smooth Grad-CAM++.

All three share one compiled step: forward pass with the feature layer watched, one tape,
dS/dA for the target logits S, then a small weights function and L = ReLU(sum_k w_k A^k).
The backward pass only crosses the layers after A (the tape watches A, not the weights).
"""
from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from .base import LayerExplainer, resolve_targets, target_scores


def gradcam_weights(A: tf.Tensor, d1: tf.Tensor, d2: tf.Tensor, d3: tf.Tensor) -> tf.Tensor:
    """Grad-CAM (Selvaraju 2017): w_k = mean_ij dS/dA_ij^k."""
    return tf.reduce_mean(d1, axis=[1, 2])


def gradcam_plus_plus_weights(A: tf.Tensor, d1: tf.Tensor, d2: tf.Tensor, d3: tf.Tensor) -> tf.Tensor:
    """Grad-CAM++ (Chattopadhay 2018, exp trick as in the authors' code and tf-keras-vis).

    alpha_ij^k = d2 / (2 d2 + sum_ab A_ab^k d3)   (a zero denominator counts as 1),
    alpha normalised by its spatial sum (a zero sum counts as 1),
    w_k = sum_ij alpha_ij^k ReLU(d1_ij^k),
    with d1, d2, d3 = g, g^2, g^3 for g = dS/dA (or their SmoothGrad averages).
    """
    global_sum = tf.reduce_sum(A, axis=[1, 2], keepdims=True)
    denom = 2.0 * d2 + d3 * global_sum
    alpha = d2 / tf.where(denom != 0.0, denom, tf.ones_like(denom))
    norm = tf.reduce_sum(alpha, axis=[1, 2], keepdims=True)
    alpha = alpha / tf.where(norm != 0.0, norm, tf.ones_like(norm))
    return tf.reduce_sum(alpha * tf.nn.relu(d1), axis=[1, 2])


class _GradientCAM(LayerExplainer):
    """Base of the gradient CAMs; subclasses set `weights_fn` and may override `_derivatives`."""

    weights_fn = staticmethod(gradcam_weights)

    def __init__(self, model: keras.Model, layer=None, batch_size: int = 32):
        super().__init__(model, layer)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)

    def _gradients(self, x: tf.Tensor, targets: tf.Tensor):
        """(A, g, targets) with g = dS/dA, all float32; targets resolved to top-1 where -1."""
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            A, logits = self.forward(x, on_feature=tape.watch)
            targets = resolve_targets(logits, targets)
            scores = target_scores(logits, targets)
        g = tape.gradient(scores, A)
        if g is None:
            raise ValueError(f"the model's output does not depend on layer {self.layer.name!r}")
        return tf.cast(A, tf.float32), tf.cast(g, tf.float32), targets

    def _derivatives(self, x: tf.Tensor, targets: tf.Tensor):
        """(A, d1, d2, d3): the activations and the 1st/2nd/3rd derivative terms g, g^2, g^3."""
        A, g, _ = self._gradients(x, targets)
        g2 = g * g
        return A, g, g2, g2 * g

    def _explain_batch(self, x: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        A, d1, d2, d3 = self._derivatives(x, targets)
        w = self.weights_fn(A, d1, d2, d3)
        return tf.nn.relu(tf.einsum("bhwk,bk->bhw", A, w))


class GradCAM(_GradientCAM):
    """Grad-CAM (Selvaraju et al., ICCV 2017): L = ReLU(sum_k mean_ij(dS/dA_ij^k) A^k)."""


class GradCAMPlusPlus(_GradientCAM):
    """Grad-CAM++ (Chattopadhay et al., WACV 2018); weights in `gradcam_plus_plus_weights`."""

    weights_fn = staticmethod(gradcam_plus_plus_weights)


class SmoothGradCAMPlusPlus(_GradientCAM):
    """Smooth Grad-CAM++ (Omeiza et al., 2019).

    The derivative terms g, g^2, g^3 are averaged over `n_samples` noisy copies
    x + N(0, (noise * (max x - min x))^2) (range per image), then the Grad-CAM++ formula is
    applied with the activations A of the clean image. Targets default to the clean top-1.
    """

    weights_fn = staticmethod(gradcam_plus_plus_weights)

    def __init__(
        self,
        model: keras.Model,
        layer=None,
        n_samples: int = 16,
        noise: float = 0.15,
        seed: Optional[int] = None,
        batch_size: int = 32,
    ):
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.n_samples, self.noise = int(n_samples), float(noise)
        self._rng = (
            tf.random.Generator.from_seed(seed) if seed is not None else tf.random.Generator.from_non_deterministic_state()
        )
        super().__init__(model, layer, batch_size=batch_size)

    def _derivatives(self, x: tf.Tensor, targets: tf.Tensor):
        A, logits = self.forward(x)
        A = tf.cast(A, tf.float32)
        targets = resolve_targets(logits, targets)
        sigma = self.noise * (
            tf.reduce_max(x, axis=[1, 2, 3], keepdims=True) - tf.reduce_min(x, axis=[1, 2, 3], keepdims=True)
        )
        d1 = tf.zeros_like(A)
        d2 = tf.zeros_like(A)
        d3 = tf.zeros_like(A)
        for _ in tf.range(self.n_samples):
            noisy = x + sigma * self._rng.normal(tf.shape(x))
            _, g, _ = self._gradients(noisy, targets)
            g2 = g * g
            d1 += g
            d2 += g2
            d3 += g2 * g
        n = float(self.n_samples)
        return A, d1 / n, d2 / n, d3 / n
