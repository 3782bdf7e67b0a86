"""Bad inputs to the Python API (rows "api-*" of docs/bad_inputs.md): each gets one ValueError naming the value and the fix.

Also the cases a careful user expects to *work*: a 1-unit sigmoid head and a regression head are explained
(the only output is class 0), and a Keras whose graph internals changed gives one error naming the supported range.
"""
import re
from pathlib import Path

import keras
import numpy as np
import pytest

import cams
from cams_models import conv_gap_dense, images

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"


def no_4d_model():
    inp = keras.Input((8, 8, 3))
    return keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(inp)), name="mlp")


def two_outputs_model():
    inp = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, name="feat")(inp)
    g = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, [keras.layers.Dense(2)(g), keras.layers.Dense(3)(g)], name="two_out")


def two_inputs_model():
    a, b = keras.Input((12, 12, 3)), keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, name="feat")(keras.layers.Add()([a, b]))
    return keras.Model([a, b], keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)), name="two_in")


def gradcam(model, x, targets=None):
    return cams.make_explainer("gradcam", model)(x, targets)


CASES = {
    # id: (call(model) -> anything, expected message (regex))
    "api-images-nan": (lambda m: gradcam(m, np.where(np.arange(24)[None, :, None, None] == 3, np.nan, images(2))),
                       r"images contain NaN or infinite values \(first at index \(0, 3, 0, 0\)\); clean the input"),
    "api-images-inf": (lambda m: gradcam(m, np.full((1, 24, 24, 3), np.inf)), r"NaN or infinite values"),
    "api-images-rank3": (lambda m: gradcam(m, images(1)[0]), r"rank 3 .*\(for one image, pass image\[None\]\)"),
    "api-images-grey-for-rgb": (lambda m: gradcam(m, images(2, channels=1)),
                                r"images have 1 channels but the model expects 3"),
    "api-images-other-size": (lambda m: gradcam(m, images(2, size=20)), r"are 20x20 but the model expects 24x24; resize"),
    "api-images-empty": (lambda m: gradcam(m, np.zeros((0, 24, 24, 3))), r"images is empty \(N = 0\)"),
    "api-images-text": (lambda m: gradcam(m, [["a"]]), r"images must be a numeric array"),
    "api-targets-out-of-range": (lambda m: gradcam(m, images(2), [0, 4]),
                                 r"target class 4 is out of range: the model has 4 classes \(0..3\)"),
    "api-targets-negative": (lambda m: gradcam(m, images(2), -1), r"target class -1 is out of range"),
    "api-targets-wrong-length": (lambda m: gradcam(m, images(3), [0, 1]), r"targets must be None, an int or 3 ints"),
    "api-targets-fractional": (lambda m: gradcam(m, images(1), 1.5), r"targets must be None, an int or 1 ints"),
    "api-layer-unknown": (lambda m: cams.make_explainer("gradcam", m, layer="nope"),
                          r"no layer named 'nope' .*layers with a 4-D output: conv1, feat"),
    "api-model-no-4d-layer": (lambda m: cams.make_explainer("gradcam", no_4d_model()),
                              r"no layer with a 4-D \(N, H, W, C\) output"),
    "api-model-two-outputs": (lambda m: cams.make_explainer("gradcam", two_outputs_model())(np.zeros((1, 12, 12, 3))),
                              r"has 2 outputs; CAMs need one|several outputs"),
    "api-model-two-inputs": (lambda m: cams.make_explainer("gradcam", two_inputs_model())(np.zeros((1, 12, 12, 3))),
                             r"has 2 inputs; CAMs need one image input"),
    "api-batch-size-0": (lambda m: cams.make_explainer("gradcam", m, batch_size=0), r"batch_size must be >= 1, got 0"),
    "api-smooth-n-0": (lambda m: cams.make_explainer("smoothgradcam++", m, n_samples=0), r"n_samples must be >= 1, got 0"),
    "api-smooth-noise-nan": (lambda m: cams.make_explainer("smoothgradcam++", m, noise=float("nan")),
                             r"noise must be >= 0, got nan"),
    "api-smooth-noise-negative": (lambda m: cams.make_explainer("smoothgradcam++", m, noise=-0.1),
                                  r"noise must be >= 0, got -0.1"),
    "api-rise-grid-0": (lambda m: cams.make_explainer("rise", m, grid=0), r"n_masks and grid must be >= 1"),
    "api-rise-p-0": (lambda m: cams.make_explainer("rise", m, p=0.0), r"p must be in \(0, 1\], got 0.0"),
    "api-rise-p-nan": (lambda m: cams.make_explainer("rise", m, p=float("nan")), r"p must be in \(0, 1\], got nan"),
    "api-scorecam-k-0": (lambda m: cams.make_explainer("scorecam", m, max_channels=0), r"max_channels must be >= 1"),
}


@pytest.fixture(scope="module")
def model():
    return conv_gap_dense(size=24, softmax=True)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_value_error(model, case):
    call, message = CASES[case]
    with pytest.raises(ValueError) as info:
        call(model)
    text = str(info.value)
    assert re.search(message, text), text
    assert "\n" not in text


@pytest.mark.parametrize("activation", ["sigmoid", None], ids=["sigmoid-1-unit", "regression-head"])
def test_one_unit_head_is_explained_as_class_0(activation):
    """A 1-unit (sigmoid) or regression head: the single output is class 0; class 1 is out of range."""
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="feat")(inp)
    out = keras.layers.Dense(1, activation=activation)(keras.layers.GlobalAveragePooling2D()(x))
    m = keras.Model(inp, out)
    x = images(2, size=16)
    maps = gradcam(m, x)
    assert maps.shape == (2, 16, 16) and np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    np.testing.assert_allclose(gradcam(m, x, 0), maps, atol=1e-6)
    with pytest.raises(ValueError, match=r"target class 1 is out of range: the model has 1 classes \(0..0\)"):
        gradcam(m, x, 1)


def test_changed_keras_internals_name_the_supported_range(model, monkeypatch):
    """If Keras drops the functional-graph walk cams replays, one error names the supported versions."""
    from keras.src.ops.function import Function

    from cams.core.model_graph import UnsupportedKerasError

    monkeypatch.delattr(Function, "_run_through_graph")
    with pytest.raises(UnsupportedKerasError, match=r"changed Functional._run_through_graph.*pip install \"keras[<>=0-9.,]+\" \"tensorflow"):
        gradcam(model, images(1))


def test_every_case_is_in_the_table():
    table = DOC.read_text()
    assert [c for c in CASES if f"`{c}`" not in table] == []
