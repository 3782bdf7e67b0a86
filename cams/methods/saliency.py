"""Gradient saliency (Simonyan et al., 2014), with the SmoothGrad option (Smilkov et al., 2017)."""
from __future__ import annotations

import keras
import tensorflow as tf

from cams.core.base import Explainer, noisy_copy, resolve_targets, seeded_generator, target_scores
from cams.core import model_graph
from cams.methods.registry import register


@register("saliency", gradient=True, title="Saliency", family="gradient", cost="1 forward + full backward",
          paper="Simonyan et al., 2014; Smilkov et al., 2017 (SmoothGrad)", formula="max_c abs(dS/dx_c)")
class Saliency(Explainer):
    """M = max_c |dS/dx_c|; with `smooth_samples` = n > 0, M is averaged over n noisy copies
    x + N(0, (noise * (max x - min x))^2). S is the target's pre-softmax logit."""

    def __init__(self, model: keras.Model, smooth_samples: int = 0, noise: float = 0.15, batch_size: int = 32, seed=None):
        super().__init__(model)
        if smooth_samples < 0 or noise < 0:
            raise ValueError(f"smooth_samples and noise must be >= 0, got {smooth_samples}, {noise}")
        self.smooth_samples, self.noise, self.batch_size = int(smooth_samples), float(noise), int(batch_size)
        self._rng = seeded_generator(seed)

    @property
    def variables(self) -> list:
        """The noise generator's state (tracked when the explainer is exported)."""
        return [self._rng.state]

    def forward_passes(self) -> float:
        """One forward pass and one full backward pass (about 2 forwards) per noisy copy."""
        return 2.0 * max(1, self.smooth_samples + (self.smooth_samples > 0))

    def _abs_grad(self, x, targets):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            _, logits = model_graph.forward(self.model, x, all_outputs=True)
            targets = resolve_targets(logits, targets)
            scores = target_scores(logits, targets)
        g = tf.cast(tape.gradient(scores, x), tf.float32)
        return tf.reduce_max(tf.abs(g), axis=-1), targets

    def _explain_batch(self, x, targets):
        sal, targets = self._abs_grad(x, targets)
        if self.smooth_samples == 0:
            return sal
        total = tf.zeros_like(sal)
        for _ in tf.range(self.smooth_samples):
            total += self._abs_grad(noisy_copy(x, self.noise, self._rng), targets)[0]
        return total / float(self.smooth_samples)
