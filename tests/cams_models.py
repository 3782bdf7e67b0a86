"""Tiny models shared by the cams tests."""
import keras
import numpy as np


def conv_gap_dense(size=24, channels=3, k=6, classes=4, softmax=False, name="cgd"):
    """Input -> conv1 -> conv2 (feature layer "feat") -> GAP -> Dense (optionally softmax)."""
    inp = keras.Input((size, size, channels))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inp)
    x = keras.layers.Conv2D(k, 3, activation="relu", name="feat")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(classes, activation="softmax" if softmax else None, name="head")(x)
    return keras.Model(inp, out, name=name)


def conv_flatten_dense(size=20, classes=3, softmax=True, functional=False):
    """A model whose head is non-linear (Flatten -> Dense relu -> Dense); Sequential or functional."""
    seq = keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(6, 3, activation="relu", name="c1"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(8, 3, activation="relu", name="c2"),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(classes, activation="softmax" if softmax else None, name="out"),
        ],
        name="seq",
    )
    if not functional:
        return seq
    inp = keras.Input((size, size, 3))
    x = inp
    for layer in seq.layers:
        x = layer(x)
    return keras.Model(inp, x, name="functional_head")


def images(n=4, size=24, channels=3, seed=0):
    return np.random.default_rng(seed).random((n, size, size, channels)).astype("float32")


class ClassToken(keras.layers.Layer):
    """Prepends a learned class token to (N, T, D) tokens, as ViT does."""

    def build(self, shape):
        self.token = self.add_weight(shape=(1, 1, shape[-1]), initializer="random_normal")

    def call(self, x):
        import tensorflow as tf

        return tf.concat([tf.tile(self.token, [tf.shape(x)[0], 1, 1]), x], axis=1)
