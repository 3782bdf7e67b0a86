"""Attention rollout and gradient-weighted attention against plain numpy implementations of their
equations, on a small vision transformer built from keras.layers.MultiHeadAttention; the attention
probabilities are recomputed here by hand from the layers' own projections."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import cams
from cams_models import ClassToken
from cams.core import model_graph

SIZE, PATCH, DIM, HEADS, BLOCKS = 16, 4, 8, 2, 2


@pytest.fixture(scope="module")
def vit():
    keras.utils.set_random_seed(4)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(DIM, PATCH, strides=PATCH, name="patches")(inp)
    x = ClassToken(name="cls")(keras.layers.Reshape(((SIZE // PATCH) ** 2, DIM))(x))
    for b in range(BLOCKS):
        h = keras.layers.LayerNormalization(name=f"ln{b}")(x)
        x = keras.layers.Add()([x, keras.layers.MultiHeadAttention(HEADS, DIM // HEADS, name=f"mha{b}")(h, h)])
        x = keras.layers.Add()([x, keras.layers.Dense(DIM, activation="tanh", name=f"mlp{b}")(x)])
    return keras.Model(inp, keras.layers.Dense(3, name="head")(x[:, 0]), name="tiny_vit")


def manual_forward(model, x, tape=None):
    """(logits, [P_b]) with P = softmax(q k^T / sqrt(d)) computed here from each MHA's projections."""
    t = model.get_layer("cls")(keras.layers.Reshape((-1, DIM))(model.get_layer("patches")(x)))
    probs = []
    for b in range(BLOCKS):
        h = model.get_layer(f"ln{b}")(t)
        mha = model.get_layer(f"mha{b}")
        q, k, v = mha._query_dense(h), mha._key_dense(h), mha._value_dense(h)
        P = tf.nn.softmax(tf.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(DIM // HEADS), axis=-1)
        if tape is not None:
            tape.watch(P)
        probs.append(P)
        out = mha._output_dense(tf.einsum("bhqk,bkhd->bqhd", P, v))
        np.testing.assert_allclose(out.numpy(), mha(h, h).numpy(), atol=1e-5)  # the hand-made attention is the layer's
        t = t + out
        t = t + model.get_layer(f"mlp{b}")(t)
    return model.get_layer("head")(t[:, 0]), probs


def finish(raw):
    """The explainers' common last step: bilinear resize to the input, min-max per map."""
    up = tf.image.resize(np.asarray(raw, np.float32)[..., None], (SIZE, SIZE), method="bilinear")[..., 0].numpy()
    lo, hi = up.min(axis=(1, 2), keepdims=True), up.max(axis=(1, 2), keepdims=True)
    return (up - lo) / (hi - lo)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(3).random((2, SIZE, SIZE, 3)).astype("float32")


def test_captured_probabilities_are_the_layers_own(vit, x):
    probs, logits = model_graph.forward_attention(vit, tf.constant(x))
    want_logits, want = manual_forward(vit, tf.constant(x))
    assert len(probs) == BLOCKS and probs[0].shape == (2, HEADS, 17, 17)
    for got, ref in zip(probs, want):
        np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(logits.numpy(), want_logits.numpy(), atol=1e-5)


def test_rollout_matches_numpy(vit, x):
    _, probs = manual_forward(vit, tf.constant(x))
    n = probs[0].shape[-1]
    R = np.broadcast_to(np.eye(n), (2, n, n))
    for P in probs:
        A = 0.5 * P.numpy().mean(axis=1) + 0.5 * np.eye(n)
        A = A / A.sum(axis=-1, keepdims=True)
        R = A @ R
    expected = finish(R[:, 0, 1:].reshape(2, 4, 4))
    np.testing.assert_allclose(cams.AttentionRollout(vit)(x), expected, atol=1e-4)


def test_gradient_weighted_attention_matches_numpy(vit, x):
    targets = [2, 0]
    with tf.GradientTape(persistent=True) as tape:
        logits, probs = manual_forward(vit, tf.constant(x), tape)
        score = tf.reduce_sum(tf.gather(logits, targets, axis=1, batch_dims=1))
    grads = [tape.gradient(score, P).numpy() for P in probs]
    n = probs[0].shape[-1]
    R = np.broadcast_to(np.eye(n), (2, n, n)).copy()
    for P, G in zip(probs, grads):
        R = R + np.maximum(G * P.numpy(), 0).mean(axis=1) @ R
    expected = finish(R[:, 0, 1:].reshape(2, 4, 4))
    np.testing.assert_allclose(cams.GradientAttention(vit)(x, targets), expected, atol=1e-4)


def test_a_cnn_is_refused_in_one_line():
    inp = keras.Input((8, 8, 3))
    cnn = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(inp))))
    with pytest.raises(ValueError, match="has no keras MultiHeadAttention layer") as err:
        cams.make_explainer("rollout", cnn)
    assert "\n" not in str(err.value)


def test_default_layer_of_a_transformer_is_the_first_norm_of_the_last_block(vit, x):
    ex = cams.GradCAM(vit)
    assert ex.layer.name == f"ln{BLOCKS - 1}"
    maps = ex(x)
    assert maps.shape == (2, SIZE, SIZE) and np.isfinite(maps).all() and maps.max() == 1.0
