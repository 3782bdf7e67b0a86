"""Score-CAM, RISE and saliency: agreement with tf-keras-vis, closed forms, bounded memory."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import cams
from cams_models import conv_gap_dense, images


class BatchLimit(keras.layers.Layer):
    """Identity layer that fails if it ever sees more than `limit` images at once."""

    def __init__(self, limit, **kwargs):
        super().__init__(**kwargs)
        self.limit = limit

    def call(self, x):
        tf.debugging.assert_less_equal(tf.shape(x)[0], self.limit, message="too many images in one chunk")
        return x


def test_scorecam_agrees_with_tf_keras_vis():
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.scores import CategoricalScore

    model = conv_gap_dense(size=32, softmax=False)
    x = images(3, size=32)
    targets = [0, 1, 3]
    ref = np.asarray(Scorecam(model)(CategoricalScore(targets), x, penultimate_layer="feat"))
    got = cams.ScoreCAM(model, layer="feat", batch_size=4)(x, targets)
    for i in range(3):
        assert np.corrcoef(got[i].ravel(), ref[i].ravel())[0, 1] >= 0.99


def test_scorecam_streams_chunks_of_batch_size():
    inp = keras.Input((16, 16, 3))
    h = BatchLimit(5)(inp)
    h = keras.layers.Conv2D(12, 3, activation="relu", name="feat")(h)  # 12 channels -> 3 chunks
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inp, out)
    maps = cams.ScoreCAM(model, batch_size=5)(images(2, size=16))
    assert maps.shape == (2, 16, 16)
    with pytest.raises(tf.errors.InvalidArgumentError, match="too many images"):
        cams.ScoreCAM(model, batch_size=12)(images(1, size=16))


def test_scorecam_max_channels_uses_highest_variance_channels():
    model = conv_gap_dense(size=24, k=6)
    x = images(2)
    full = cams.ScoreCAM(model, max_channels=6)(x, [1, 1])
    np.testing.assert_allclose(full, cams.ScoreCAM(model)(x, [1, 1]), atol=1e-6)
    fast = cams.ScoreCAM(model, max_channels=2)(x, [1, 1])
    assert fast.shape == full.shape and np.isfinite(fast).all()
    with pytest.raises(ValueError, match="max_channels"):
        cams.ScoreCAM(model, max_channels=0)


def _region_model(size=16):
    """logit_0 = 4 * mean(top-left quadrant) - 2, logit_1 = 0: class 0 depends only on that region
    (and P(0) = sigmoid(logit_0) moves between 0.12 and 0.88 with how much of it a mask keeps)."""
    inp = keras.Input((size, size, 1))
    region = keras.layers.Cropping2D(((0, size // 2), (0, size // 2)))(inp)
    score = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(4.0 / (size * size / 4)),
                               bias_initializer=keras.initializers.Constant(-2.0))(keras.layers.Flatten()(region))
    out = keras.layers.Concatenate()([score, keras.ops.zeros_like(score)])
    return keras.Model(inp, out)


def test_rise_finds_the_only_region_the_class_depends_on():
    model = _region_model()
    x = np.ones((1, 16, 16, 1), np.float32)
    sal = cams.RISE(model, n_masks=300, grid=4, batch_size=64, seed=0)(x, 0)[0]
    assert sal[:8, :8].mean() > sal[8:, 8:].mean() + 0.3


def test_rise_is_reproducible_and_masks_are_valid():
    model = conv_gap_dense(size=24)
    x = images(2)
    a = cams.RISE(model, n_masks=64, batch_size=16, seed=3)(x)
    b = cams.RISE(model, n_masks=64, batch_size=32, seed=3)(x)  # chunking does not change the result
    np.testing.assert_allclose(a, b, atol=1e-5)
    masks = cams.RISE(model, n_masks=64, p=0.25, seed=3).masks(0, 64, (24, 24))
    assert masks.shape == (64, 24, 24) and masks.min() >= 0 and masks.max() <= 1
    assert abs(masks.mean() - 0.25) < 0.1


def test_rise_streams_chunks_of_batch_size():
    inp = keras.Input((16, 16, 3))
    h = BatchLimit(8)(inp)
    out = keras.layers.Dense(2)(keras.layers.Flatten()(h))
    maps = cams.RISE(keras.Model(inp, out), n_masks=40, batch_size=8, seed=0)(images(2, size=16))
    assert maps.shape == (2, 16, 16)


def test_saliency_of_a_linear_model_is_its_weights():
    """logits = W x: dS/dx = W[:, c], so the saliency map is max_channel |W| (normalised)."""
    inp = keras.Input((6, 5, 2))
    dense = keras.layers.Dense(3, name="lin")
    model = keras.Model(inp, dense(keras.layers.Flatten()(inp)))
    x = images(2, size=6)[..., :2][:, :, :5]
    maps = cams.Saliency(model)(x, [2, 0])
    W = dense.kernel.numpy().reshape(6, 5, 2, 3)
    for i, c in enumerate([2, 0]):
        expected = np.abs(W[..., c]).max(axis=-1)
        expected = (expected - expected.min()) / (expected.max() - expected.min())
        np.testing.assert_allclose(maps[i], expected, atol=1e-5)


def test_smoothgrad_saliency_is_seeded():
    model = conv_gap_dense()
    x = images(2)
    a = cams.Saliency(model, smooth_samples=3, seed=1)(x)
    b = cams.Saliency(model, smooth_samples=3, seed=1)(x)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert a.shape == (2, 24, 24) and 0 <= a.min() and a.max() <= 1
