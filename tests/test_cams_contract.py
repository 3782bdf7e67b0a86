"""The contract every registered explainer keeps, parametrised over the registry (a new method is
tested here as soon as it is registered): (N, H, W) float32 maps in [0, 1], targets as None / an
int / N ints with a wrong length refused, a feature layer inside a nested base, float32 maps for a
mixed_float16 model. Each method runs with its registry `quick` options."""
import keras
import numpy as np
import pytest

import cams
from cams.methods import registry
from cams_models import images

SIZE, CLASSES = 24, 4


def plain_model():
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv1")(inp)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="feat")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(CLASSES, activation="softmax", name="head")(x), name="plain")


def nested_model():
    """A transfer-style model: the feature layer lives inside a nested base (GAP included)."""
    inner = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu", name="b_conv1")(inner)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="b_feat")(x)
    base = keras.Model(inner, keras.layers.GlobalAveragePooling2D()(x), name="base")
    inp = keras.Input((SIZE, SIZE, 3))
    return keras.Model(inp, keras.layers.Dense(CLASSES, activation="softmax", name="head")(base(inp)), name="transfer")


def mixed_model():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inp = keras.Input((SIZE, SIZE, 3))
        x = keras.layers.Conv2D(8, 3, activation="relu", name="feat")(inp)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inp, keras.layers.Dense(CLASSES, activation="softmax", dtype="float32")(x), name="mixed")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("feat").compute_dtype == "float16"
    return model


def build(name, model):
    """The explainer registered as `name` for `model`; a learned method is trained (1 tiny epoch)."""
    method = registry.get(name)
    if method.attention:  # transformers only: tests/test_attention_methods.py and tests/test_hub_models.py
        pytest.skip(f"{name} reads the attention layers of a transformer; these models are CNNs")
    if method.trained_file:
        return method.cls.train(model, images(16, size=SIZE, seed=3), mode="img", epochs=1, batch_size=8)
    return registry.make_explainer(name, model, **{"seed": 0, **method.quick})


def check_maps(maps, n):
    assert maps.shape == (n, SIZE, SIZE) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0
    assert maps.max() > 0, "an all-zero map for every image: the method saw no signal"


METHODS = registry.names()


@pytest.mark.parametrize("name", METHODS)
def test_shape_dtype_range_and_targets(name):
    model, x = plain_model(), images(3, size=SIZE)
    ex = build(name, model)
    check_maps(ex(x), 3)
    check_maps(ex(x, 2), 3)
    check_maps(ex(x, [0, 3, 1]), 3)
    with pytest.raises(ValueError, match="targets"):
        ex(x, [0, 1])
    with pytest.raises(ValueError, match=f"target class {CLASSES} is out of range"):
        ex(x, CLASSES)
    assert ex.forward_passes() >= 1


@pytest.mark.parametrize("name", METHODS)
def test_layer_inside_a_nested_base(name):
    model = nested_model()
    ex = build(name, model)
    if registry.get(name).uses_layer:
        assert ex.layer.name == "b_feat"
    check_maps(ex(images(2, size=SIZE), [1, 2]), 2)


@pytest.mark.parametrize("name", METHODS)
def test_mixed_float16_model_gives_float32_maps(name):
    ex = build(name, mixed_model())
    check_maps(ex(images(2, size=SIZE)), 2)
