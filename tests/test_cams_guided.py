"""Guided Backprop and Guided Grad-CAM: the guided gradient against a plain numpy implementation of
Springenberg et al.'s rule on a model with all three kinds of ReLU (fused activation, ReLU layer,
Activation layer) and a nested base; the model is not changed; Guided Grad-CAM = guided map x Grad-CAM."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import cams
from cams.methods.attribution import guided_gradients, input_gradients

D, H1, H2, CLASSES = 12, 10, 8, 3


@pytest.fixture(scope="module")
def mlp():
    """x (2x2x3) -> Dense(relu, fused) -> Dense -> ReLU() -> Dense -> Activation('relu') -> Dense(softmax), the
    first Dense inside a nested model."""
    inner_in = keras.Input((2, 2, 3))
    inner = keras.Model(inner_in, keras.layers.Dense(H1, activation="relu", name="d1")(keras.layers.Flatten()(inner_in)),
                        name="base")
    inp = keras.Input((2, 2, 3))
    h = keras.layers.ReLU(name="r2")(keras.layers.Dense(H2, name="d2")(inner(inp)))
    h = keras.layers.Activation("relu", name="r3")(keras.layers.Dense(H2, name="d3")(h))
    model = keras.Model(inp, keras.layers.Dense(CLASSES, activation="softmax", name="head")(h))
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.8, w.shape).astype("float32") for w in model.get_weights()])
    return model


def numpy_gradients(model, x, targets, guided):
    """dS/dx by hand: forward z1..z3, then back through each ReLU (guided: dy > 0 and z > 0)."""
    (W1, b1), (W2, b2), (W3, b3), (W4, b4) = (model.get_layer("base").get_layer("d1").get_weights(),
                                              *(model.get_layer(n).get_weights() for n in ("d2", "d3", "head")))
    v = x.reshape(len(x), -1).astype(np.float64)
    z1 = v @ W1 + b1
    z2 = np.maximum(z1, 0) @ W2 + b2
    z3 = np.maximum(z2, 0) @ W3 + b3
    dy = W4[:, targets].T  # dS/d relu(z3)

    def through_relu(dy, z):
        keep = (z > 0) & (dy > 0) if guided else (z > 0)
        return dy * keep

    d = through_relu(dy, z3) @ W3.T
    d = through_relu(d, z2) @ W2.T
    d = through_relu(d, z1) @ W1.T
    return d.reshape(x.shape)


def test_guided_gradients_follow_the_rule_on_every_kind_of_relu(mlp):
    x = np.random.default_rng(1).normal(size=(5, 2, 2, 3)).astype("float32")
    targets = np.array([0, 1, 2, 0, 1], np.int32)
    g, _ = guided_gradients(mlp, tf.constant(x), tf.constant(targets))
    plain, _ = input_gradients(mlp, tf.constant(x), tf.constant(targets))
    np.testing.assert_allclose(g.numpy(), numpy_gradients(mlp, x, targets, guided=True), atol=1e-4)
    np.testing.assert_allclose(plain.numpy(), numpy_gradients(mlp, x, targets, guided=False), atol=1e-4)
    assert not np.allclose(g.numpy(), plain.numpy(), atol=1e-3), "the test model must have negative gradients to drop"


def test_the_model_is_not_changed(mlp):
    x = np.random.default_rng(2).normal(size=(3, 2, 2, 3)).astype("float32")
    before = mlp.predict(x, verbose=0)
    weights = [w.copy() for w in mlp.get_weights()]
    cams.GuidedBackprop(mlp)(x)
    np.testing.assert_array_equal(mlp.predict(x, verbose=0), before)
    assert all(np.array_equal(a, b) for a, b in zip(weights, mlp.get_weights()))
    assert mlp.get_layer("base").get_layer("d1").activation is keras.activations.relu
    plain, _ = input_gradients(mlp, tf.constant(x), tf.constant([0, 1, 2]))
    np.testing.assert_allclose(plain.numpy(), numpy_gradients(mlp, x, np.array([0, 1, 2]), guided=False), atol=1e-4)


def test_guided_backprop_map_is_the_channel_sum_of_the_guided_gradient(mlp):
    x = np.random.default_rng(3).normal(size=(2, 2, 2, 3)).astype("float32")
    g = numpy_gradients(mlp, x, np.array([1, 2]), guided=True)
    m = np.abs(g).sum(-1)
    lo, hi = m.min(axis=(1, 2), keepdims=True), m.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(cams.GuidedBackprop(mlp)(x, [1, 2]), (m - lo) / (hi - lo), atol=1e-4)
    signed = g.sum(-1) / np.abs(g.sum(-1)).max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(cams.GuidedBackprop(mlp, signed=True)(x, [1, 2]), signed, atol=1e-4)


def test_guided_gradcam_is_guided_backprop_times_gradcam():
    from cams_models import conv_gap_dense, images

    model, x = conv_gap_dense(size=16), images(3, size=16, seed=4)
    t = [0, 2, 1]
    gb = guided_gradients(model, tf.constant(x), tf.constant(t, tf.int32))[0].numpy()
    product = np.abs(gb).sum(-1) * cams.GradCAM(model)(x, t)
    lo, hi = product.min(axis=(1, 2), keepdims=True), product.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(cams.GuidedGradCAM(model)(x, t), (product - lo) / (hi - lo), atol=1e-5)
    top = model.predict(x, verbose=0).argmax(1)
    np.testing.assert_allclose(cams.GuidedGradCAM(model)(x), cams.GuidedGradCAM(model)(x, top), atol=1e-6)
    assert cams.GuidedGradCAM(model, layer="conv1").layer.name == "conv1"


def test_guided_gradcam_runs_under_op_determinism():
    """Op determinism (which the apps turn on for reproducible training) refuses fresh-entropy random
    generators; an explainer built without a seed must still run there (in its own process)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import os; os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import keras, numpy as np, tensorflow as tf, cams
        keras.utils.set_random_seed(0); tf.config.experimental.enable_op_determinism()
        inp = keras.Input((16, 16, 3)); x = keras.layers.Conv2D(4, 3, activation="relu", name="feat")(inp)
        m = keras.Model(inp, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))
        x = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
        print(cams.GuidedGradCAM(m)(x).shape, cams.GradCAM(m, smooth_samples=2)(x).shape)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert proc.stdout.split() == ["(2,", "16,", "16)", "(2,", "16,", "16)"]
