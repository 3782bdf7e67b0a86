"""model_graph behaviour that differs between the Keras versions setup.cfg supports (see
scripts/check_keras_versions.py): cutting a head around a skip connection, and replaying a model
built for a fixed size inside a tf.function traced with unknown sizes."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from cams.core import model_graph
from cams_models import images


def _residual(skip_around_feat: bool):
    """conv a -> conv feat -> GAP -> Dense; with `skip_around_feat` the GAP reads a + feat (a ResNet block
    around the feature layer), else the skip closes before feat (a + conv b -> feat)."""
    inp = keras.Input((12, 12, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="a")(inp)
    if skip_around_feat:
        feat = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="feat")(a)
        x = keras.layers.Add()([a, feat])
    else:
        b = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="b")(a)
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="feat")(keras.layers.Add()([a, b]))
    out = keras.layers.Dense(3, name="out")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inp, out)


def test_no_head_is_cut_around_a_skip_connection():
    model = _residual(skip_around_feat=True)
    assert model_graph.head_model(model, model.get_layer("feat")) is None


def test_no_head_is_cut_around_a_skip_connection_inside_a_nested_base():
    base = _residual(skip_around_feat=True)
    inp = keras.Input((12, 12, 3))
    model = keras.Model(inp, keras.layers.Dense(2, name="top")(base(inp)))
    assert model_graph.head_model(model, base.get_layer("feat")) is None


def test_a_skip_connection_before_the_layer_still_gives_a_head_equal_to_the_model():
    model = _residual(skip_around_feat=False)
    layer = model.get_layer("feat")
    head = model_graph.head_model(model, layer)
    assert head is not None
    x = tf.constant(images(2, size=12))
    A, logits = model_graph.forward(model, x, layer)
    np.testing.assert_allclose(model_graph.forward(head, A)[1].numpy(), logits.numpy(), atol=1e-5)
    np.testing.assert_allclose(logits.numpy(), model(x).numpy(), atol=1e-5)


@pytest.mark.parametrize("functional", [True, False])
def test_forward_traced_with_unknown_sizes_runs_a_flatten_model(functional):
    """The batch and the image size unknown at trace time (as in RISE's compiled step): the model's
    declared (H, W, C) is applied, so a Flatten -> Dense head traces on every supported Keras."""
    layers = [keras.layers.Conv2D(3, 3, name="c"), keras.layers.Flatten(), keras.layers.Dense(2, name="d")]
    if functional:
        inp = keras.Input((10, 10, 1))
        x_ = inp
        for lyr in layers:
            x_ = lyr(x_)
        model = keras.Model(inp, x_)
    else:
        model = keras.Sequential([keras.Input((10, 10, 1)), *layers])
    fn = tf.function(lambda x: model_graph.forward(model, x)[1],
                     input_signature=[tf.TensorSpec((None, None, None, 1), tf.float32)])
    x = images(3, size=10, channels=1)
    np.testing.assert_allclose(fn(tf.constant(x)).numpy(), model(x).numpy(), atol=1e-5)
