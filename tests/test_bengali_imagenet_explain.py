"""Figure 9: `bengali-xai explain --arch NAME --weights ...` (Grad-CAM of an ImageNet classifier on digits)."""
from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from bengali_xai.errors import BengaliXAIError
from bengali_xai.explain import digits_to_rgb, explain_imagenet, imagenet_classifier, pick_examples
from bengali_xai.synthetic import make_synthetic


@pytest.fixture(scope="module")
def digits():
    return make_synthetic(100, seed=0)


@pytest.fixture(scope="module")
def tiny_mobilenet():
    keras.utils.set_random_seed(0)
    return imagenet_classifier("MobileNetV2", "none", 32)


def test_classifier_by_name_with_its_own_preprocessing(tiny_mobilenet):
    model, preprocess = tiny_mobilenet
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 1000)
    x = np.array([[[[0.0, 127.5, 255.0]]]], np.float32)
    np.testing.assert_allclose(preprocess(x.copy()), [[[[-1.0, 0.0, 1.0]]]])  # MobileNetV2: x / 127.5 - 1
    _, vgg_pre = imagenet_classifier("VGG16", "none", 32)
    y = vgg_pre(np.zeros((1, 1, 1, 3), np.float32))  # caffe mode: RGB -> BGR minus the ImageNet means
    np.testing.assert_allclose(y[0, 0, 0], [-103.939, -116.779, -123.68], atol=1e-3)


def test_digits_become_three_channel_images_at_the_input_size():
    grey = np.zeros((2, 28, 28, 1), np.float32)
    grey[:, 10:18, 10:18] = 1.0
    rgb = digits_to_rgb(grey, 56)
    assert rgb.shape == (2, 56, 56, 3) and rgb.min() == 0.0 and rgb.max() == 255.0
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_explain_imagenet_explains_the_top1_class(tiny_mobilenet, digits, tmp_path):
    from cams.methods import registry

    model, preprocess = tiny_mobilenet
    r = explain_imagenet(model, preprocess, digits, tmp_path, n=3, seed=0, labels=None)
    idx = pick_examples(digits, 3, 0)
    x = preprocess(digits_to_rgb(digits.x[idx], 32))
    top = model.predict(x, verbose=0).argmax(axis=1)
    assert r["top1_class"] == [int(k) for k in top]
    assert (tmp_path / "imagenet_gradcam.png").is_file()
    summary = json.loads((tmp_path / "imagenet_explain.json").read_text())
    assert summary["images"] == [int(i) for i in idx] and summary["input_size"] == 32
    # the figure's maps are Grad-CAM from cams' registry for that class
    maps = registry.make_explainer("gradcam", model)(x, targets=top)
    assert maps.shape == (3, 32, 32)


def test_labels_file_names_the_classes(tiny_mobilenet, digits, tmp_path):
    model, preprocess = tiny_mobilenet
    labels = tmp_path / "names.txt"
    labels.write_text("\n".join(f"name{k}" for k in range(1000)))
    r = explain_imagenet(model, preprocess, digits, tmp_path / "out", n=2, labels=str(labels))
    assert r["top1_name"] == [f"name{k} (class {k})" for k in r["top1_class"]]


def test_unknown_arch_and_missing_weights_are_one_line():
    with pytest.raises(BengaliXAIError, match="unknown --arch 'VGG17'"):
        imagenet_classifier("VGG17")
    with pytest.raises(BengaliXAIError, match="file not found"):
        imagenet_classifier("MobileNetV2", "/no/such/weights.h5")


def test_imagenet_download_failure_is_one_clear_line(monkeypatch):
    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/x.h5: None -- [Errno -2] "
                        "Name or service not known")

    offline.__module__ = keras.applications.MobileNetV2.__module__  # its preprocess_input is still found
    monkeypatch.setattr(keras.applications, "MobileNetV2", offline)
    with pytest.raises(BengaliXAIError) as err:
        imagenet_classifier("MobileNetV2", "imagenet")
    msg = str(err.value)
    assert "\n" not in msg and "could not be downloaded" in msg and "--weights PATH" in msg


def test_cli_with_a_local_weights_file(tiny_mobilenet, tmp_path):
    model, preprocess = tiny_mobilenet
    weights = tmp_path / "mobilenet.weights.h5"
    model.save_weights(weights)
    out = tmp_path / "fig9"
    r = subprocess.run([sys.executable, "-m", "bengali_xai.cli", "explain", "--arch", "MobileNetV2", "--weights",
                        str(weights), "--input-size", "32", "--max-samples", "100", "--n", "3", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "imagenet_explain.json").read_text())
    data = make_synthetic(100, seed=0)
    x = preprocess(digits_to_rgb(data.x[summary["images"]], 32))
    assert summary["top1_class"] == [int(k) for k in model.predict(x, verbose=0).argmax(axis=1)]
    assert (out / "imagenet_gradcam.png").is_file()


def test_cli_needs_exactly_one_of_model_and_arch(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bengali_xai.cli", "explain", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "bengali-xai explain: error: give exactly one of --model FILE (a trained digit CNN) and --arch NAME "
        "(a keras.applications ImageNet classifier)"]
