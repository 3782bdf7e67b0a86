"""Ablation-CAM (Desai & Ramaswamy, WACV 2020): channel weights from the score drop when a
channel is zeroed, computed through the layers after the feature layer only."""
from __future__ import annotations

import keras
import tensorflow as tf

from cams.core import model_graph
from cams.core.base import LayerExplainer, one_target_scores, resolve_targets, target_scores
from cams.core.inputs import check_count
from cams.methods.registry import register


def pooled_head(head):
    """(the pooling layer, the head after it) when `head` starts with a GlobalAveragePooling2D or
    GlobalMaxPooling2D (keepdims off) that alone reads its input; (None, None) otherwise."""
    layers = [lyr for lyr in getattr(head, "layers", [])[1:2]
              if isinstance(lyr, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D))
              and not getattr(lyr, "keepdims", False)]
    rest = model_graph.head_model(head, layers[0]) if layers else None
    return (layers[0], rest) if rest is not None else (None, None)


@register("ablationcam", gradient=False, title="Ablation-CAM", family="perturbation", cost="1 forward + K head passes",
          paper="Desai & Ramaswamy, WACV 2020",
          formula="w_k = (S - S_k) / S, S_k = score with channel k of A zeroed; L = ReLU(sum_k w_k A^k)")
class AblationCAM(LayerExplainer):
    """Ablation-CAM (Desai & Ramaswamy, "Ablation-CAM: Visual Explanations for Deep Convolutional
    Network via Gradient-free Localization", WACV 2020).

    S = the target's pre-softmax logit; S_k = the same logit when channel k of A is set to zero;
    w_k = (S - S_k) / S (0 where S = 0); L = ReLU(sum_k w_k A^k).

    The ablated copies of A only run through the head, the layers after the feature layer, cut out
    of the model as a Keras model by `model_graph.head_model` (a layer inside a nested base is cut
    level by level). Where no head can be cut (a skip connection around the layer), each ablated
    copy runs the whole model with A replaced (`model_graph.forward(..., replace=)`): correct, but
    full passes. Channels that are identically zero are skipped (ablating them changes nothing).
    At most `batch_size` ablated copies exist at once, in one compiled graph per image.

    A head that starts with a global pooling read by nothing else (GAP or global max pooling, as in
    most classifiers) shares that layer: the pooling of A with channel k zeroed is pool(A) with entry
    k zeroed, so the copies are (K,) vectors p * (1 - e_k) run through the layers after the pooling
    (exact; h * w times less memory per copy, chunks of `batch_size * h * w`).

    Args:
        model: a Keras classifier (Sequential or functional, nested bases included).
        layer: the feature layer: a name, a Layer, or None for the last layer with a 4-D output.
        batch_size: ablated copies of A per head pass (memory bound).
    """

    exportable = False  # one image per graph call

    def __init__(self, model: keras.Model, layer=None, batch_size: int = 64):
        self.chunk_size = check_count(batch_size, "batch_size")
        super().__init__(model, layer)
        self.head = model_graph.head_model(model, self.layer)
        self.pool, self.after_pool = pooled_head(self.head)
        self.batch_size = 1  # one image per compiled call; its ablated copies are chunked

    def forward_passes(self) -> float:
        """1 + K: the clean forward pass and K passes through the head (full passes when no head
        can be cut, see the class docstring). Zero channels, skipped at run time, are counted."""
        return 1.0 + model_graph.feature_channels(self.model, self.layer)

    def ablated_scores(self, x: tf.Tensor, A: tf.Tensor, channels: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        """S_k for each k in `channels`: the target logit with channel k of A (1, h, w, K) zeroed."""
        keep = 1.0 - tf.one_hot(channels, tf.shape(A)[-1], dtype=tf.float32)  # (c, K)
        if self.after_pool is not None:  # pool(A with channel k zeroed) = pool(A) with entry k zeroed
            pooled = tf.cast(tf.cast(self.pool(A), tf.float32) * keep, A.dtype)  # (c, K)
            return one_target_scores(model_graph.forward(self.after_pool, pooled)[1], target)
        ablated = tf.cast(tf.cast(A, tf.float32) * keep[:, None, None, :], A.dtype)  # (c, h, w, K)
        if self.head is not None:
            _, logits = model_graph.forward(self.head, ablated)
        else:
            copies = tf.repeat(x, tf.shape(channels)[0], axis=0)
            _, logits = model_graph.forward(self.model, copies, self.layer, replace=lambda _: ablated, all_outputs=True)
        return one_target_scores(logits, target)

    def _explain_batch(self, x, targets):
        A, logits = self.forward(x)
        target = resolve_targets(logits, targets)
        S = target_scores(logits, target)[0]
        live = tf.cast(tf.where(tf.reduce_max(tf.abs(tf.cast(A[0], tf.float32)), axis=[0, 1]) > 0)[:, 0], tf.int32)
        A32 = tf.cast(A[0], tf.float32)
        cam = tf.zeros(tf.shape(A32)[:2], tf.float32)
        chunk = self.chunk_size * (tf.shape(A32)[0] * tf.shape(A32)[1] if self.after_pool is not None else 1)
        for start in tf.range(0, tf.shape(live)[0], chunk):
            channels = live[start : start + chunk]
            weights = tf.math.divide_no_nan(S - self.ablated_scores(x, A, channels, target[0]), S)
            cam += tf.einsum("hwk,k->hw", tf.gather(A32, channels, axis=-1), weights)
        return tf.nn.relu(cam)[None]
