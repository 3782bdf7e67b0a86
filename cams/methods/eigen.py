"""Eigen-CAM (Muhammad & Yeasin, IJCNN 2020): the first principal component of the activations."""
from __future__ import annotations

import keras
import tensorflow as tf

from cams.core.base import LayerExplainer
from cams.core.inputs import check_count
from cams.methods.registry import register


def principal_projection(A: tf.Tensor) -> tf.Tensor:
    """(B, h, w, K) activations -> (B, h, w) projections on their first principal component.

    X = A reshaped to (h*w, K) and centred per channel; with X = U S V^T, the map is X v_1 = s_1 u_1.
    The sign of a singular vector is arbitrary, so it is chosen to make the map correlate
    positively with the mean activation over channels (a zero correlation keeps the sign).
    """
    A = tf.cast(A, tf.float32)
    shape = tf.shape(A)
    X = tf.reshape(A, [shape[0], shape[1] * shape[2], shape[3]])
    X = X - tf.reduce_mean(X, axis=1, keepdims=True)
    s, u, _ = tf.linalg.svd(X, full_matrices=False)
    proj = u[:, :, 0] * s[:, :1]  # (B, h*w)
    mean_act = tf.reduce_mean(tf.reshape(A, tf.shape(X)), axis=-1)
    mean_act -= tf.reduce_mean(mean_act, axis=1, keepdims=True)
    agreement = tf.reduce_sum(proj * mean_act, axis=1, keepdims=True)
    proj *= tf.where(agreement < 0, -1.0, 1.0)
    return tf.reshape(proj, shape[:3])


@register("eigencam", gradient=False, title="Eigen-CAM", family="activation", cost="1 forward (no backward)",
          paper="Muhammad & Yeasin, IJCNN 2020",
          formula="L = (A - mean A) v_1, v_1 the first right singular vector of the centred (hw x K) activations")
class EigenCAM(LayerExplainer):
    """Eigen-CAM (Muhammad & Yeasin, "Eigen-CAM: Class Activation Map using Principal Components",
    IJCNN 2020).

    L = X v_1: the centred activations X (h*w x K) projected on their first principal component
    (`principal_projection`), sign fixed to agree with the mean activation, min-max normalised
    (no ReLU, as in the paper). Gradient-free and class-agnostic: `targets` are accepted and do not
    change the map. Cost: one forward pass and one small SVD per image.

    Args:
        model: a Keras classifier (Sequential or functional, nested bases included).
        layer: the feature layer: a name, a Layer, or None for the last layer with a 4-D output.
        batch_size: images per compiled call.
    """

    def __init__(self, model: keras.Model, layer=None, batch_size: int = 32):
        self.batch_size = check_count(batch_size, "batch_size")
        super().__init__(model, layer)

    def _explain_batch(self, x: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        A, _ = self.forward(x)
        return principal_projection(A)

    #: gradient-free: a pass shared with other methods on the layer gives the map (`cams.methods.shared`)
    shares_pass, needs_gradient = True, False

    def map_from_pass(self, A: tf.Tensor, g, logits, targets) -> tf.Tensor:
        """The raw map (B, h, w) from a shared pass's A (g, logits and targets are not used)."""
        return principal_projection(A)
