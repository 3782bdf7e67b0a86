"""SavedModel exports of both apps' models reload with tf.saved_model.load in a fresh process and
give the Keras model's predictions, plus softmax probabilities and the Grad-CAM map."""
import subprocess
import sys

import keras
import numpy as np
import pytest

import cams
from bengali_xai.model import build_cnn
from cams.methods import registry
from deepfake_xai.models import build_model

RELOAD = """
import sys, numpy as np, tensorflow as tf
folder, inputs, result = sys.argv[1:4]
loaded = tf.saved_model.load(folder)
out = loaded.serve(tf.constant(np.load(inputs)))
sig = loaded.signatures["serving_default"](tf.constant(np.load(inputs)))
np.savez(result, signature_predictions=sig["predictions"].numpy(), **{k: v.numpy() for k, v in out.items()})
"""


def _models():
    keras.utils.set_random_seed(0)
    inner = keras.applications.Xception(include_top=False, weights=None, input_shape=(71, 71, 3), pooling="avg")
    inp = keras.Input((71, 71, 3))
    nested = keras.Model(inp, keras.layers.Dense(2, dtype="float32")(inner(inp)), name="xception_transfer")
    return {
        "bengali_cnn": (build_cnn(), (28, 28, 1)),
        "simplenet": (build_model("SimpleNet", 64, "none"), (64, 64, 3)),
        "nested_xception": (nested, (71, 71, 3)),
    }


@pytest.mark.parametrize("name", ["bengali_cnn", "simplenet", "nested_xception"])
def test_savedmodel_reloads_in_a_fresh_process(name, tmp_path):
    model, shape = _models()[name]
    x = np.random.default_rng(1).random((3, *shape)).astype(np.float32)
    folder = cams.export.export_savedmodel(model, tmp_path / "sm", explain="gradcam")
    np.save(tmp_path / "x.npy", x)
    script = tmp_path / "reload.py"
    script.write_text(RELOAD)
    proc = subprocess.run([sys.executable, str(script), str(folder), str(tmp_path / "x.npy"), str(tmp_path / "out.npz")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    keras_pred = model.predict(x, verbose=0)
    np.testing.assert_allclose(out["predictions"], keras_pred, atol=1e-5)
    np.testing.assert_allclose(out["signature_predictions"], keras_pred, atol=1e-5)
    np.testing.assert_allclose(out["probabilities"], cams.metrics.probabilities(model, x), atol=1e-5)
    np.testing.assert_array_equal(out["class"], keras_pred.argmax(axis=1))
    np.testing.assert_allclose(out["map"], cams.GradCAM(model)(x), atol=1e-4)


def test_export_refuses_a_folder_that_is_not_a_savedmodel(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a SavedModel folder"):
        cams.export.export_savedmodel(build_cnn(), tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="explain must be one of"):
        cams.export.export_savedmodel(build_cnn(), tmp_path / "x", explain="scorecam")


#: the attention methods read transformers' attention layers; this test's model is a CNN
CNN_EXPORTABLE = [m for m in cams.export.exportable_methods() if not registry.methods()[m].attention]


@pytest.mark.parametrize("method", CNN_EXPORTABLE)
def test_every_exportable_method_serves_its_own_maps(method, tmp_path):
    """One exporter for every registered method whose map is one graph: `serve` gives the top-1
    map and `explain` the map of given targets, both equal to the explainer's own."""
    import tensorflow as tf
    from cams_models import conv_gap_dense, images

    model, x = conv_gap_dense(softmax=True), images(3)
    options = {"seed": 0, **cams.methods.registry.get(method).quick}
    cams.export.export_savedmodel(model, tmp_path / "sm", explain=cams.make_explainer(method, model, **options))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    np.testing.assert_allclose(loaded.serve(tf.constant(x))["map"].numpy(),
                               cams.make_explainer(method, model, **options)(x), atol=1e-5)
    targets = np.array([3, 0, 2], np.int32)
    chosen = loaded.signatures["explain"](images=tf.constant(x), targets=tf.constant(targets))
    np.testing.assert_allclose(chosen["map"].numpy(), cams.make_explainer(method, model, **options)(x, targets), atol=1e-5)
    assert set(chosen) == {"predictions", "probabilities", "class", "map"}
