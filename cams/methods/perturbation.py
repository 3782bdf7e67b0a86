"""Perturbation CAMs: Score-CAM and RISE. Both stream fixed-size chunks of perturbed images,
so at most `batch_size` perturbed images exist in memory at once."""
from __future__ import annotations

from typing import Optional

import cv2
import keras
import numpy as np
import tensorflow as tf

from cams.core.base import Explainer, LayerExplainer, compiled, one_target_probabilities, resolve_targets
from cams.core.target_batch import Bound, TargetBatch
from cams.core.inputs import Targets, check_count, check_images
from cams.core import model_graph
from cams.methods.registry import register


@register("scorecam", gradient=False, title="Score-CAM", family="perturbation", cost="K + 1 forwards (K channels; all-zero ones skipped)",
          paper="Wang et al., CVPR-W 2020", formula="w_k = softmax(f(x * norm(up(A^k))))_c; L = ReLU(sum_k w_k A^k)",
          quick={"max_channels": 4})
class ScoreCAM(LayerExplainer):
    """Score-CAM (Wang et al., CVPR-W 2020).

    Each channel A^k is bilinearly upsampled to the input size and min-max normalised to H^k;
    w_k = softmax(f(x * H^k))[target]; L = ReLU(sum_k w_k A^k).
    `max_channels` keeps only the channels of largest spatial variance (Faster Score-CAM).
    Channels that are identically zero are skipped: their term w_k A^k is 0 whatever w_k is.
    Cost: one forward pass plus one per remaining channel, streamed in chunks of `batch_size`
    masked images inside one compiled graph per image.
    """

    def __init__(self, model: keras.Model, layer=None, batch_size: int = 32, max_channels: Optional[int] = None):
        self.chunk_size = check_count(batch_size, "batch_size")
        if max_channels is not None and int(max_channels) < 1:
            raise ValueError(f"max_channels must be >= 1 or None, got {max_channels}")
        self.max_channels = None if max_channels is None else int(max_channels)
        super().__init__(model, layer)
        self.batch_size = 1  # one image per compiled call; its masked copies are chunked

    exportable = False  # one image per graph call

    def forward_passes(self) -> float:
        """1 + K: the clean pass and one per scored channel (all-zero channels, skipped at run
        time, are counted: this is an upper bound)."""
        k = model_graph.feature_channels(self.model, self.layer)
        return 1.0 + (k if self.max_channels is None else min(k, self.max_channels))

    def channel_masks(self, image: tf.Tensor, acts: tf.Tensor) -> tf.Tensor:
        """H^k: the channels `acts` (h, w, k) bilinearly upsampled to the image size and min-max
        normalised to [0, 1] (a constant channel gives a zero mask); returned as (k, H, W)."""
        up = tf.image.resize(acts[None], tf.shape(image)[:2], method="bilinear")[0]  # (H, W, k)
        lo = tf.reduce_min(up, axis=[0, 1], keepdims=True)
        hi = tf.reduce_max(up, axis=[0, 1], keepdims=True)
        span = hi - lo
        masks = tf.where(span > 0, (up - lo) / tf.where(span > 0, span, 1.0), tf.zeros_like(up))
        return tf.transpose(masks, [2, 0, 1])

    def mask_scores(self, image: tf.Tensor, masks: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        """softmax(f(image * m))[target] for each mask m of `masks` (n, H, W), in one batch."""
        _, logits = model_graph.forward(self.model, image[None] * masks[..., None], all_outputs=True)
        return one_target_probabilities(logits, target)

    def channel_scores(self, image: tf.Tensor, acts: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        """The weight w_k of each channel of `acts` (h, w, k): softmax(f(image * H^k))[target].
        SS-CAM and IS-CAM override this (noisy / integrated masks)."""
        return self.mask_scores(image, self.channel_masks(image, acts), target)

    def _explain_batch(self, x, targets):
        A, logits = self.forward(x)
        A = tf.cast(A, tf.float32)[0]
        target = resolve_targets(logits, targets)[0]
        if self.max_channels is not None and self.max_channels < A.shape[-1]:
            keep = tf.math.top_k(tf.math.reduce_variance(A, axis=[0, 1]), self.max_channels).indices
            A = tf.gather(A, keep, axis=-1)
        live = tf.where(tf.reduce_max(tf.abs(A), axis=[0, 1]) > 0)[:, 0]
        A = tf.gather(A, live, axis=-1)
        cam = tf.zeros(tf.shape(A)[:2], tf.float32)
        for start in tf.range(0, tf.shape(A)[-1], self.chunk_size):
            acts = A[..., start : start + self.chunk_size]
            cam += tf.einsum("hwk,k->hw", acts, self.channel_scores(x[0], acts, target))
        return tf.nn.relu(cam)[None]


@register("rise", gradient=False, title="RISE", family="perturbation", cost="n_masks forwards",
          paper="Petsiuk et al., BMVC 2018", formula="sum_i p_c(x * m_i) m_i / (n_masks p), random binary grids m_i",
          quick={"n_masks": 40, "seed": 0})
class RISE(Explainer):
    """RISE (Petsiuk et al., BMVC 2018).

    `n_masks` random binary grids of `grid` x `grid` cells (keep probability `p`), bilinearly
    upsampled to (grid + 1) * cell and cropped with a random shift, cell = ceil(H / grid);
    saliency = sum_i P(target | x * m_i) m_i / (n_masks * p). Masks are generated chunk by chunk
    from `seed` (the same mask set for every image), `batch_size` masked images at a time.
    """

    def __init__(
        self,
        model: keras.Model,
        n_masks: int = 4000,
        grid: int = 7,
        p: float = 0.5,
        batch_size: int = 64,
        seed: Optional[int] = None,
    ):
        super().__init__(model)
        if n_masks < 1 or grid < 1:
            raise ValueError(f"n_masks and grid must be >= 1, got n_masks={n_masks}, grid={grid}")
        if not 0.0 < p <= 1.0:
            raise ValueError(f"p must be in (0, 1], got {p}")
        self.n_masks, self.grid, self.p = int(n_masks), int(grid), float(p)
        self.chunk_size = check_count(batch_size, "batch_size")
        self.seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % (2**31))
        _, h, w, c = self.input_shape
        self._logits_fn = model_graph.logits_function(model)
        self._accumulate_fn = compiled(
            self._accumulate,
            [
                tf.TensorSpec((None, None, c), tf.float32),
                tf.TensorSpec((None, None, None), tf.float32),
                tf.TensorSpec((), tf.int32),
            ],
        )

    exportable = False  # masks are drawn in numpy, chunk by chunk

    def forward_passes(self) -> float:
        """n_masks masked passes, plus the clean pass that finds the top-1 class."""
        return 1.0 + self.n_masks

    def masks(self, start: int, count: int, size) -> np.ndarray:
        """Masks start..start+count-1 (float32, (count, H, W)), reproducible for the seed."""
        H, W = int(size[0]), int(size[1])
        cell_h, cell_w = int(np.ceil(H / self.grid)), int(np.ceil(W / self.grid))
        up_h, up_w = (self.grid + 1) * cell_h, (self.grid + 1) * cell_w
        out = np.empty((count, H, W), np.float32)
        for j in range(count):
            rng = np.random.default_rng([self.seed, start + j])
            cells = (rng.random((self.grid, self.grid)) < self.p).astype(np.float32)
            up = cv2.resize(cells, (up_w, up_h), interpolation=cv2.INTER_LINEAR)
            dy, dx = rng.integers(0, cell_h), rng.integers(0, cell_w)
            out[j] = up[dy : dy + H, dx : dx + W]
        return out

    def _accumulate(self, image, masks, target):
        _, logits = model_graph.forward(self.model, image[None] * masks[..., None], all_outputs=True)
        probs = one_target_probabilities(logits, target)
        return tf.einsum("n,nhw->hw", probs, masks)

    def _target_accumulator(self, x: np.ndarray, batch: TargetBatch):
        """accumulate(i, masks) for target objects: their defaults fixed on the clean image i, then as `_accumulate`."""
        key = ("rise", *batch.key, x.shape[1:])
        fn = self._by_target_kind.get(key)
        if fn is None:
            target = batch.target

            def run(image, masks, params):
                _, clean = model_graph.forward(self.model, image[None], all_outputs=True)
                return self._accumulate(image, masks, Bound(target, params, image[None]).resolve(clean))

            fn = compiled(run, [tf.TensorSpec(x.shape[1:], tf.float32), tf.TensorSpec((None, *x.shape[1:3]), tf.float32),
                                batch.specs()])
            self._by_target_kind[key] = fn
        return lambda i, masks: fn(tf.constant(x[i]), masks, batch.tensors(i, i + 1))

    def __call__(self, images, targets: Targets = None) -> np.ndarray:
        from cams.core.base import normalize_maps

        x = check_images(images, self.input_shape)
        t = self.checked_targets(targets, len(x))
        if isinstance(t, TargetBatch):
            accumulate = self._target_accumulator(x, t)
        else:
            if (t < 0).any():
                top1 = np.concatenate([np.argmax(self._logits_fn(tf.constant(x[s : s + self.chunk_size])), -1)
                                       for s in range(0, len(x), self.chunk_size)])
                t = np.where(t < 0, top1, t).astype(np.int32)
            accumulate = lambda i, masks: self._accumulate_fn(tf.constant(x[i]), masks, tf.constant(t[i]))  # noqa: E731
        sal = np.zeros(x.shape[:3], np.float32)
        for start in range(0, self.n_masks, self.chunk_size):
            masks = tf.constant(self.masks(start, min(self.chunk_size, self.n_masks - start), x.shape[1:3]))
            for i in range(len(x)):
                sal[i] += accumulate(i, masks).numpy()
        sal /= self.n_masks * self.p
        return normalize_maps(tf.constant(sal)).numpy().astype(np.float32)
