"""Gradient x Input and Integrated Gradients: closed forms on a linear model, IG's completeness axiom
on a non-linear one (Sundararajan et al., ICML 2017), signed maps, and the SmoothGrad option."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import cams
from cams_models import conv_gap_dense, images

SIZE, CLASSES = 12, 3


@pytest.fixture(scope="module")
def linear():
    """S = W^T vec(x) + b: every attribution has a closed form."""
    inp = keras.Input((SIZE, SIZE, 3))
    out = keras.layers.Dense(CLASSES, name="head")(keras.layers.Flatten()(inp))
    model = keras.Model(inp, out)
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(SIZE * SIZE * 3, CLASSES)).astype("float32")
    model.get_layer("head").set_weights([kernel, rng.normal(size=CLASSES).astype("float32")])
    return model, kernel.reshape(SIZE, SIZE, 3, CLASSES)


def expected_signed(contribution):
    """sum over channels, divided by the largest absolute value per image (numpy, from the definition)."""
    m = contribution.sum(-1)
    return m / np.abs(m).reshape(len(m), -1).max(1)[:, None, None]


@pytest.mark.parametrize("method", ["gradinput", "integratedgradients"])
def test_linear_model_closed_form(linear, method):
    """For S linear with baseline 0, both give a = x * W[..., c]: pixel contributions to the logit."""
    model, w = linear
    x = images(3, size=SIZE, seed=2) - 0.5
    t = [0, 2, 1]
    signed = cams.make_explainer(method, model, signed=True, steps=4)(x, t) if method != "gradinput" else \
        cams.make_explainer(method, model, signed=True)(x, t)
    contribution = x * np.moveaxis(w[..., t], -1, 0)
    np.testing.assert_allclose(signed, expected_signed(contribution), atol=1e-5)
    unsigned = cams.make_explainer(method, model)(x, t)
    m = np.abs(contribution).sum(-1)
    lo, hi = m.min(axis=(1, 2), keepdims=True), m.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(unsigned, (m - lo) / (hi - lo), atol=1e-5)
    assert unsigned.min() >= 0 and unsigned.max() <= 1 and signed.min() >= -1 and signed.max() <= 1


def test_integrated_gradients_completeness_within_one_percent_at_64_steps():
    """sum_i a_i = S(x) - S(x') (the paper's completeness axiom), here within 1% at m = 64."""
    model = conv_gap_dense(size=16, classes=4)
    rng = np.random.default_rng(4)  # biases too: with zero biases a ReLU net is linear along the path
    model.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in model.get_weights()])
    x = images(4, size=16, seed=5)
    ig = cams.IntegratedGradients(model, steps=64)
    targets = tf.constant([1, 3, 0, 2], tf.int32)
    a = ig.attribution(tf.constant(x), targets).numpy()
    logits = model.predict(x, verbose=0)
    logits0 = model.predict(np.zeros_like(x), verbose=0)
    gap = logits[np.arange(4), targets.numpy()] - logits0[np.arange(4), targets.numpy()]
    assert np.all(np.abs(gap) > 1e-3), "a test model whose target scores do not move tests nothing"
    np.testing.assert_allclose(a.reshape(4, -1).sum(1), gap, rtol=0.01)
    coarse = cams.IntegratedGradients(model, steps=2).attribution(tf.constant(x), targets).numpy()
    assert np.abs(coarse.reshape(4, -1).sum(1) - gap).max() > np.abs(a.reshape(4, -1).sum(1) - gap).max()


def test_top1_targets_are_the_clean_images_class(linear):
    model, _ = linear
    x = images(3, size=SIZE, seed=4)
    top = model.predict(x, verbose=0).argmax(1)
    for name in ("gradinput", "integratedgradients"):
        ex = cams.make_explainer(name, model, steps=4) if name == "integratedgradients" else cams.make_explainer(name, model)
        np.testing.assert_allclose(ex(x), ex(x, top), atol=1e-6)


def test_smoothgrad_option(linear):
    """No noise: the plain map; with noise: seeded (reproducible), and for a linear model the gradient
    is the same at every copy, so Gradient x Input's noise averages out only through x."""
    model, _ = linear
    x = images(2, size=SIZE, seed=6)
    plain = cams.GradientInput(model)(x, [0, 1])
    np.testing.assert_allclose(cams.GradientInput(model, smooth_samples=3, noise=0.0)(x, [0, 1]), plain, atol=1e-6)
    a = cams.GradientInput(model, smooth_samples=4, noise=0.2, seed=7)(x, [0, 1])
    b = cams.GradientInput(model, smooth_samples=4, noise=0.2, seed=7)(x, [0, 1])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, plain, atol=1e-3)
    assert cams.GradientInput(model, smooth_samples=4).forward_passes() == 9
    assert cams.IntegratedGradients(model, steps=8).forward_passes() == 17


@pytest.mark.parametrize("options, message", [
    ({"smooth_samples": -1}, "smooth_samples must be a whole number >= 0"),
    ({"noise": float("nan")}, "noise must be >= 0"),
    ({"steps": 0}, "steps must be >= 1"),
])
def test_bad_options(linear, options, message):
    with pytest.raises(ValueError, match=message):
        cams.IntegratedGradients(linear[0], **options)


@pytest.mark.parametrize("name", ["gradcam", "gradcam++", "hirescam", "xgradcam", "layercam"])
def test_smoothgrad_is_an_option_of_every_gradient_cam(name):
    """smooth_samples = n averages dS/dA over n noisy copies (Smilkov et al. 2017): with no noise it is
    the plain map; with noise, seeded and reproducible; Smooth Grad-CAM++ is Grad-CAM++ with it."""
    model, x = conv_gap_dense(size=16), images(2, size=16, seed=8)
    plain = cams.make_explainer(name, model)(x, [0, 1])
    np.testing.assert_allclose(cams.make_explainer(name, model, smooth_samples=3, noise=0.0)(x, [0, 1]), plain, atol=1e-5)
    a = cams.make_explainer(name, model, smooth_samples=3, noise=0.3, seed=2)(x, [0, 1])
    np.testing.assert_array_equal(a, cams.make_explainer(name, model, smooth_samples=3, noise=0.3, seed=2)(x, [0, 1]))
    assert cams.make_explainer(name, model, smooth_samples=3).forward_passes() == 4
    if name == "gradcam++":
        np.testing.assert_allclose(cams.SmoothGradCAMPlusPlus(model, n_samples=3, noise=0.3, seed=2)(x, [0, 1]), a, atol=1e-6)


def test_integrated_gradients_is_the_same_whatever_steps_go_together():
    """Path points batched several steps at a time (path_batch) give the one-step-at-a-time sum,
    also when the chunk does not divide the number of steps."""
    model, x = conv_gap_dense(size=16), images(3, size=16, seed=9)
    one = cams.IntegratedGradients(model, steps=7, batch_size=3, path_batch=3)
    for path_batch in (9, 12, 64):
        many = cams.IntegratedGradients(model, steps=7, batch_size=3, path_batch=path_batch)
        assert many.chunk > 1
        np.testing.assert_allclose(many(x, [0, 1, 2]), one(x, [0, 1, 2]), atol=1e-5)
