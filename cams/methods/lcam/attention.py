"""L-CAM's attention mechanism as a Keras layer: one 1x1 convolution with bias from the K channels
of the frozen classifier's feature map F to its C classes (Gkartzonika et al., ECCV-W 2022, Eq. 3).

    logits = F W + b          (N, h, w, K) -> (N, h, w, C), always computed in float32
    a = sigmoid(logits);  a_c = the channel of class c

The layer keeps float32 variables and float32 outputs under a mixed-precision policy, so the
attention logits and the loss never lose precision to float16/bfloat16 features.
"""
from __future__ import annotations

from typing import Optional

import keras
import numpy as np
import tensorflow as tf


def attention_logits(features: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """The attention mechanism's 1x1 convolution (paper Eq. 3): (N, h, w, K) -> (N, h, w, C), float32."""
    return tf.einsum("nhwk,kc->nhwc", tf.cast(features, tf.float32), tf.cast(kernel, tf.float32)) + tf.cast(
        bias, tf.float32)


def select_class(maps: tf.Tensor, classes: tf.Tensor) -> tf.Tensor:
    """(N, h, w, C) maps and N class indices -> (N, h, w): each map's channel of its class."""
    per_class = tf.transpose(maps, [0, 3, 1, 2])
    return tf.gather(per_class, tf.cast(classes, tf.int32), axis=1, batch_dims=1)


def initial_weights(channels: int, classes: int, seed: Optional[int] = None):
    """PyTorch's Conv2d initialisation, as the official code uses: kernel (K, C) and bias (C,)
    uniform in +-1/sqrt(K)."""
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(channels)
    return (rng.uniform(-bound, bound, (channels, classes)).astype(np.float32),
            rng.uniform(-bound, bound, (classes,)).astype(np.float32))


@keras.saving.register_keras_serializable(package="cams")
class Attention(keras.layers.Layer):
    """The 1x1 conv attention: `Attention(K, C, kernel, bias)(features) -> (N, h, w, C)` float32 logits.

    Args:
        channels: K, the feature layer's channels.
        classes: C, the classifier's classes.
        kernel: initial weights (K, C) (see `initial_weights`); None: zeros (a `.keras` file then
            loads its saved weights into them).
        bias: initial biases (C,); None: zeros.
        description: free text kept in the layer's config (the L-CAM file's JSON description).
    """

    def __init__(self, channels: int, classes: int, kernel=None, bias=None, description: str = "", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.channels, self.classes, self.description = int(channels), int(classes), str(description)
        kernel = np.zeros((self.channels, self.classes)) if kernel is None else kernel
        bias = np.zeros((self.classes,)) if bias is None else bias
        kernel, bias = np.asarray(kernel, np.float32), np.asarray(bias, np.float32)
        if kernel.shape != (self.channels, self.classes) or bias.shape != (self.classes,):
            raise ValueError(
                f"attention weights have shapes {kernel.shape} and {bias.shape}; expected "
                f"({self.channels}, {self.classes}) and ({self.classes},)")
        self.kernel = self.add_weight(shape=kernel.shape, initializer=keras.initializers.Constant(kernel),
                                      name="kernel", dtype="float32")
        self.bias = self.add_weight(shape=bias.shape, initializer=keras.initializers.Constant(bias),
                                    name="bias", dtype="float32")
        self.built = True

    def call(self, features):
        return attention_logits(features, self.kernel, self.bias)

    def class_logits(self, features, classes) -> tf.Tensor:
        """The logits of each image's class only, (N, h, w) float32: F W[:, c_n] + b[c_n].

        Equal to select_class(self(features), classes) at 1/C of the cost (C = 1000 for ImageNet:
        on a small backbone the full (N, h, w, C) map costs more than the backbone's forward pass)."""
        classes = tf.cast(classes, tf.int32)
        w = tf.gather(tf.convert_to_tensor(self.kernel), classes, axis=1)  # (K, N)
        b = tf.gather(tf.convert_to_tensor(self.bias), classes)             # (N,)
        return tf.einsum("nhwk,kn->nhw", tf.cast(features, tf.float32), w) + b[:, None, None]

    def masks(self, features, classes) -> tf.Tensor:
        """a_c = sigmoid(logits) of each image's class: (N, h, w) float32 (the training masks M)."""
        return tf.sigmoid(self.class_logits(features, classes))

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "classes": self.classes,
                "description": self.description}
