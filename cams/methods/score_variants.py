"""Score-CAM variants that change only how a channel is scored: SS-CAM (noisy masks) and IS-CAM
(masks integrated from 0). Both reuse `ScoreCAM`'s masks, chunking and combination; each
overrides `channel_scores`."""
from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from cams.core.base import seeded_generator
from cams.core.inputs import check_count
from cams.methods.perturbation import ScoreCAM
from cams.methods.registry import register


@register("sscam", gradient=False, title="SS-CAM", family="perturbation", cost="K n_samples + 1 forwards",
          paper="Wang et al., 2020 (SS-CAM)",
          formula="w_k = mean_i softmax(f(x * (H^k + N(0, sigma^2))))_c; L = ReLU(sum_k w_k A^k)",
          quick={"max_channels": 4, "n_samples": 2, "seed": 0})
class SSCAM(ScoreCAM):
    """SS-CAM (Wang, Naidu, Michael & Kundu, "SS-CAM: Smoothed Score-CAM for Sharper Visual
    Feature Localization", arXiv 2020).

    As Score-CAM, but each channel's normalised, upsampled mask H^k is scored on `n_samples` noisy
    copies and the scores are averaged (the paper's noise-on-the-mask variant):
    w_k = (1/N) sum_i softmax(f(x * (H^k + e_i)))[target], e_i ~ N(0, std^2) per pixel;
    L = ReLU(sum_k w_k A^k). Cost: 1 + K * n_samples forward passes, `batch_size` masked images at a time.

    Args:
        model: as for `ScoreCAM`.
        layer: as for `ScoreCAM`.
        batch_size: as for `ScoreCAM`.
        max_channels: as for `ScoreCAM`.
        n_samples: noisy copies of each mask (the paper's N; 35 by default, as torchcam).
        std: standard deviation of the noise added to the [0, 1] masks (torchcam's default 2.0).
        seed: seed of the noise (None: a fresh draw every call).
    """

    def __init__(self, model: keras.Model, layer=None, batch_size: int = 32, max_channels: Optional[int] = None,
                 n_samples: int = 35, std: float = 2.0, seed: Optional[int] = None):
        n_samples = check_count(n_samples, "n_samples")
        if std < 0:
            raise ValueError(f"std must be >= 0, got {std}")
        self.n_samples, self.std = int(n_samples), float(std)
        self._rng = seeded_generator(seed)
        super().__init__(model, layer, batch_size=batch_size, max_channels=max_channels)

    def forward_passes(self) -> float:
        """1 + K * n_samples (K after `max_channels`)."""
        return 1.0 + (super().forward_passes() - 1.0) * self.n_samples

    def channel_scores(self, image, acts, target):
        masks = self.channel_masks(image, acts)
        total = tf.zeros(tf.shape(masks)[:1], tf.float32)
        for _ in tf.range(self.n_samples):
            total += self.mask_scores(image, masks + self.std * self._rng.normal(tf.shape(masks)), target)
        return total / float(self.n_samples)


@register("iscam", gradient=False, title="IS-CAM", family="perturbation", cost="K n_steps + 1 forwards",
          paper="Naidu et al., 2020 (IS-CAM)",
          formula="w_k = mean_{i=1..n} softmax(f(x * (i/n) H^k))_c; L = ReLU(sum_k w_k A^k)",
          quick={"max_channels": 4, "n_steps": 2})
class ISCAM(ScoreCAM):
    """IS-CAM (Naidu, Ghosh, Maurya, Nayak & Kundu, "IS-CAM: Integrated Score-CAM for axiomatic-based
    explanations", arXiv 2020).

    As Score-CAM, but each channel's mask H^k is integrated along the path from 0 to H^k (a Riemann
    sum of n steps): w_k = (1/n) sum_{i=1..n} softmax(f(x * (i/n) H^k))[target];
    L = ReLU(sum_k w_k A^k). Cost: 1 + K * n_steps forward passes, `batch_size` masked images at a time.

    Args:
        model: as for `ScoreCAM`.
        layer: as for `ScoreCAM`.
        batch_size: as for `ScoreCAM`.
        max_channels: as for `ScoreCAM`.
        n_steps: steps of the integral (the paper's N; 10 by default, as torchcam).
    """

    def __init__(self, model: keras.Model, layer=None, batch_size: int = 32, max_channels: Optional[int] = None,
                 n_steps: int = 10):
        self.n_steps = check_count(n_steps, "n_steps")
        super().__init__(model, layer, batch_size=batch_size, max_channels=max_channels)

    def forward_passes(self) -> float:
        """1 + K * n_steps (K after `max_channels`)."""
        return 1.0 + (super().forward_passes() - 1.0) * self.n_steps

    def channel_scores(self, image, acts, target):
        masks = self.channel_masks(image, acts)
        total = tf.zeros(tf.shape(masks)[:1], tf.float32)
        for i in tf.range(1, self.n_steps + 1):
            total += self.mask_scores(image, tf.cast(i, tf.float32) / float(self.n_steps) * masks, target)
        return total / float(self.n_steps)
