"""Token sequences (N, T, D) as patch grids: the leading-token count, the adjoint, and the gradient
of the score with respect to the grid equal to the token gradient rearranged (pytorch-grad-cam's
reshape_transform applied to gradients)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import cams
from cams_models import ClassToken
from cams.core import model_graph, tokens


@pytest.mark.parametrize("n_tokens,size,prefix,grid", [
    (17, (32, 32), 1, (4, 4)),     # ViT: class token + 4 x 4 patches
    (18, (32, 32), 2, (4, 4)),     # DeiT: class + distillation tokens
    (19, (32, 32), 3, (4, 4)),     # DINOv2 with two registers
    (16, (32, 32), 0, (4, 4)),     # Swin stage output (N, H W, C)
    (33, (32, 64), 1, (4, 8)),     # a wide image
    (197, (224, 224), 1, (14, 14)),
])
def test_leading_tokens_and_grid_found_from_counts(n_tokens, size, prefix, grid):
    assert tokens.token_grid(n_tokens, size) == tokens.TokenGrid(prefix, *grid)


def test_a_count_that_is_no_grid_is_one_line_naming_the_counts():
    with pytest.raises(ValueError) as err:
        tokens.token_grid(5, (32, 48), layer_name="blk")
    text = str(err.value)
    assert "\n" not in text and "'blk' outputs 5 tokens for a 32x48 input" in text and "reshape=" in text


def test_adjoint_is_the_transpose_and_a_custom_reshape_gets_the_same_one():
    rng = np.random.default_rng(0)
    grid = tokens.TokenGrid(2, 3, 4)
    u = tf.constant(rng.normal(size=(2, 14, 5)), tf.float32)
    v = tf.constant(rng.normal(size=(2, 3, 4, 5)), tf.float32)
    lhs = float(tf.reduce_sum(grid.to_grid(u) * v))
    rhs = float(tf.reduce_sum(u * grid.adjoint(v, u)))
    assert abs(lhs - rhs) < 1e-4
    custom = tokens.CustomGrid(lambda t: tf.reshape(t[:, 2:], (-1, 3, 4, 5)))
    np.testing.assert_allclose(custom.adjoint(v, u).numpy(), grid.adjoint(v, u).numpy(), atol=1e-6)


@pytest.fixture(scope="module")
def token_model():
    """(N, 1 + 4*4, 6) tokens from 4x4 patches of a 16x16 image; the head reads every token, nonlinearly."""
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(6, 4, strides=4, name="patches")(inp)
    x = keras.layers.Reshape((16, 6))(x)
    t = ClassToken(name="tokens")(x)
    h = keras.layers.Dense(6, activation="tanh", name="mix")(t)
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(inp, keras.layers.Dense(3, name="head")(h))


def test_gradient_with_respect_to_the_grid_is_the_token_gradient_rearranged(token_model):
    x = tf.constant(np.random.default_rng(1).random((2, 16, 16, 3)), tf.float32)
    layer = token_model.get_layer("tokens")
    with tf.GradientTape() as tape:
        A, logits = model_graph.forward(token_model, x, layer, on_feature=tape.watch)
        score = tf.reduce_sum(logits[:, 1])
    g = tape.gradient(score, A)
    assert A.shape == (2, 4, 4, 6)
    # by hand: the tokens, then the head run on them directly
    t = tf.constant(layer(keras.layers.Reshape((16, 6))(token_model.get_layer("patches")(x))))
    with tf.GradientTape() as tape:
        tape.watch(t)
        out = token_model.get_layer("head")(tf.reduce_mean(token_model.get_layer("mix")(t), axis=1))
        s = tf.reduce_sum(out[:, 1])
    g_tokens = tape.gradient(s, t).numpy()
    np.testing.assert_allclose(logits.numpy(), out.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(A.numpy(), t.numpy()[:, 1:].reshape(2, 4, 4, 6), rtol=1e-6)
    np.testing.assert_allclose(g.numpy(), g_tokens[:, 1:].reshape(2, 4, 4, 6), rtol=1e-4, atol=1e-7)


def test_gradcam_on_tokens_and_a_custom_reshape(token_model):
    x = np.random.default_rng(2).random((2, 16, 16, 3)).astype("float32")
    ex = cams.GradCAM(token_model, layer="tokens")
    maps = ex(x)
    assert maps.shape == (2, 16, 16) and maps.max() == 1.0
    custom = cams.GradCAM(token_model, layer="tokens")
    custom.reshape = lambda t: tf.reshape(t[:, 1:], (-1, 4, 4, t.shape[-1]))
    np.testing.assert_allclose(custom(x), maps, atol=1e-5)
