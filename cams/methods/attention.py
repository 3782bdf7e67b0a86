"""Transformer maps read from attention: attention rollout and gradient-weighted attention.

Both read the attention probabilities P_b (B, heads, T, T) of every keras MultiHeadAttention of the
model, block after block (`cams.core.model_graph.forward_attention`), combine them into a token
relevance matrix R (B, T, T), and take the class token's row over the patch tokens, arranged as
the patch grid (`cams.core.tokens`). A model without a class token uses the mean row.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from cams.core import model_graph, sublayers, tokens
from cams.core.base import Explainer, resolve_targets, target_scores
from cams.core.inputs import check_count
from cams.methods.registry import register


class AttentionExplainer(Explainer):
    """Base class: checks the model has keras MultiHeadAttention layers; `_row` turns R into a map.

    Args:
        model: a Keras vision transformer (keras_hub ViT, DeiT, DINOv2, or any model whose blocks use
            keras.layers.MultiHeadAttention over [class/register tokens, patch tokens]).
        batch_size: images per compiled call.
    """

    def __init__(self, model: keras.Model, batch_size: int = 32):
        super().__init__(model)
        if not sublayers.attention_layers(model):
            raise ValueError(f"{type(self).__name__} reads attention probabilities and model {model.name!r} has no "
                             "keras MultiHeadAttention layer (a CNN, or Swin's window attention); use a CAM instead")
        self.batch_size = check_count(batch_size, "batch_size")

    def _row(self, R: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
        """The class token's row of R over the patch tokens, as (B, h, w); the mean row without a class token."""
        size = [d if d is not None else s for d, s in zip(self.input_shape[1:3], x.shape[1:3])]
        grid = tokens.token_grid(int(R.shape[-1]), size, self.model, "attention")
        row = R[:, 0, :] if grid.prefix > 0 else tf.reduce_mean(R, axis=1)
        return tf.reshape(row[:, grid.prefix:], (-1, grid.h, grid.w))


def _identity_like(P: tf.Tensor) -> tf.Tensor:
    return tf.eye(tf.shape(P)[-1], batch_shape=tf.shape(P)[:1], dtype=tf.float32)


@register("rollout", gradient=False, attention=True, title="Attention rollout", family="attention",
          cost="1 forward (no backward)", paper="Abnar & Zuidema, ACL 2020",
          formula="R = prod_b rownorm((I + mean_h A_b) / 2); map = class-token row over patches")
class AttentionRollout(AttentionExplainer):
    """Attention rollout (Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020).

    For blocks b = 1..L with A_b = mean over heads of the attention probabilities,
    Ã_b = (I + A_b) / 2 with rows renormalised to sum 1, and R = Ã_L ... Ã_2 Ã_1; the map is the
    class token's row of R over the patch tokens. It does not depend on the target class.
    """

    def _explain_batch(self, x: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        probs, _ = model_graph.forward_attention(self.model, x)
        R = None
        for P in probs:
            A = tf.reduce_mean(tf.cast(P, tf.float32), axis=1)
            A = 0.5 * A + 0.5 * _identity_like(P)
            A = A / tf.reduce_sum(A, axis=-1, keepdims=True)
            R = A if R is None else tf.matmul(A, R)
        return self._row(R, x)


@register("gradattention", gradient=True, attention=True, title="Gradient-weighted attention", family="attention",
          cost="1 forward + full backward", paper="Chefer, Gur & Wolf, ICCV 2021",
          formula="R = I; R += mean_h(ReLU(dS/dA_b * A_b)) R per block; map = class-token row over patches")
class GradientAttention(AttentionExplainer):
    """Gradient-weighted attention (Chefer, Gur & Wolf, "Generic Attention-model Explainability for
    Interpreting Bi-Modal and Encoder-Decoder Transformers", ICCV 2021), self-attention rule.

    R = I (T x T); for each block b in order, with A_b its attention probabilities (B, heads, T, T)
    and dS/dA_b the gradient of the target's pre-softmax logit S,
    Abar_b = mean over heads of ReLU(dS/dA_b * A_b) and R <- R + Abar_b R. The map is the class
    token's row of R over the patch tokens.
    """

    def forward_passes(self) -> float:
        """One forward pass and one full backward pass (about two forwards)."""
        return 2.0

    def _explain_batch(self, x: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            probs, logits = model_graph.forward_attention(self.model, x, on_attention=tape.watch)
            scores = target_scores(logits, resolve_targets(logits, targets))
        grads = tape.gradient(scores, probs)
        R = None
        for P, G in zip(probs, grads):
            P = tf.cast(P, tf.float32)
            G = tf.zeros_like(P) if G is None else tf.cast(G, tf.float32)
            Abar = tf.reduce_mean(tf.nn.relu(G * P), axis=1)
            R = _identity_like(P) if R is None else R
            R = R + tf.matmul(Abar, R)
        return self._row(R, x)
