"""Bad inputs raise ValueError with a message that says what is wrong."""
import keras
import numpy as np
import pytest

import cams
from cams_models import conv_gap_dense, images


@pytest.fixture(scope="module")
def model():
    return conv_gap_dense()


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((24, 24, 3), np.float32), r"shape \(N, H, W, C\).*image\[None\]"),
        (np.zeros((2, 24, 24, 1), np.float32), "1 channels but the model expects 3"),
        (np.zeros((2, 20, 24, 3), np.float32), "20x24 but the model expects 24x24"),
        (np.full((1, 24, 24, 3), np.nan, np.float32), "NaN"),
        (np.zeros((0, 24, 24, 3), np.float32), "empty"),
        ([["a"]], "numeric"),
    ],
)
@pytest.mark.parametrize("method", ["GradCAM", "ScoreCAM", "Saliency"])
def test_bad_images(model, method, bad, message):
    with pytest.raises(ValueError, match=message):
        getattr(cams, method)(model)(bad)


@pytest.mark.parametrize(
    "targets, message",
    [(4, "out of range.*4 classes"), ([0, 9], "out of range"), ([0, 1, 2], "2 ints"), (-1, "out of range"), ("a", "int")],
)
def test_bad_targets(model, targets, message):
    with pytest.raises(ValueError, match=message):
        cams.GradCAM(model)(images(2), targets)


def test_unknown_layer_lists_candidates(model):
    with pytest.raises(ValueError, match=r"no layer named 'nope'.*conv1, feat"):
        cams.GradCAM(model, layer="nope")


def test_layer_object_and_qualified_name(model):
    assert cams.GradCAM(model, layer=model.get_layer("conv1")).layer.name == "conv1"
    other = keras.layers.Conv2D(2, 3)
    with pytest.raises(ValueError, match="not part of model"):
        cams.GradCAM(model, layer=other)


def test_model_without_conv_layer_and_subclassed_model():
    dense_only = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no layer with a 4-D"):
        cams.GradCAM(dense_only)

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(2, 3)
            self.pool = keras.layers.GlobalAveragePooling2D()

        def call(self, x):
            return self.pool(self.conv(x))

    sub = Sub()
    sub(np.zeros((1, 8, 8, 1), np.float32))
    # a subclassed model's layers are captured while it runs (tests/test_capture.py checks the maps)
    maps = cams.GradCAM(sub, layer=sub.conv)(np.random.default_rng(0).random((1, 8, 8, 1), np.float32))
    assert maps.shape == (1, 8, 8) and np.isfinite(maps).all()


def test_bad_parameters(model):
    with pytest.raises(ValueError, match="batch_size"):
        cams.GradCAM(model, batch_size=0)
    with pytest.raises(ValueError, match="n_samples"):
        cams.SmoothGradCAMPlusPlus(model, n_samples=0)
    with pytest.raises(ValueError, match="p must be"):
        cams.RISE(model, p=1.5)
    with pytest.raises(ValueError, match="keras.Model"):
        cams.GradCAM("model.keras")
