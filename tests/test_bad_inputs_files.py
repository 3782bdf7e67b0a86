"""Bad files (rows "file-*" of docs/bad_inputs.md): model files, image files and L-CAM files."""
import re
from pathlib import Path

import cv2
import h5py
import keras
import numpy as np
import pytest

from cams.core.images import load_image, load_images
from cams.core.model_io import load_keras_model
from cams_models import conv_gap_dense

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_files")
    model = conv_gap_dense(size=16, softmax=True)
    model.save(root / "m.keras")
    data = (root / "m.keras").read_bytes()
    (root / "empty.keras").write_bytes(b"")
    (root / "truncated.keras").write_bytes(data[: len(data) // 2])
    (root / "picture.keras").write_bytes(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes())
    model.save(root / "legacy.h5")  # Keras' legacy HDF5 saver; marked as written by Keras 2 below
    with h5py.File(root / "legacy.h5", "r+") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0)(keras.layers.Conv2D(2, 3, name="feat")(inp))
    keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))).save(root / "lambda.keras")

    @keras.saving.register_keras_serializable(package="bad_inputs_test")
    class Twice(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    x = Twice()(keras.layers.Conv2D(2, 3, name="feat")(inp))
    keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))).save(root / "custom.keras")
    del keras.saving.get_custom_objects()["bad_inputs_test>Twice"]
    return root, model


MODEL_CASES = {
    "file-model-missing": ("missing.keras", r"missing.keras: no such model file \(expected a .keras file"),
    "file-model-empty": ("empty.keras", r"empty.keras: the model file is empty \(0 bytes\); save the model again"),
    "file-model-truncated": ("truncated.keras", r"truncated.keras: cannot load as a Keras model \(\w+: "),
    "file-model-other-format": ("picture.keras", r"picture.keras: cannot load as a Keras model \(\w+: "),
    "file-model-custom-layer": ("custom.keras", r"custom.keras: the model uses the custom layer or function 'Twice', "
                                r"which is not registered here; import the module that defines it"),
    "file-model-lambda": ("lambda.keras", r"lambda.keras: the model has a Lambda layer, whose Python code Keras refuses "
                          r"to load by default \(it could run arbitrary code\); if you trust this file, pass --unsafe"),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_bad_model_file_is_one_line(files, case):
    name, message = MODEL_CASES[case]
    with pytest.raises(ValueError) as info:
        load_keras_model(files[0] / name)
    assert re.search(message, str(info.value)) and "\n" not in str(info.value), str(info.value)


def test_lambda_model_loads_with_unsafe_and_from_the_cli(files, capsys):
    """file-model-lambda-unsafe: --unsafe (unsafe=True) loads it; `cams layers` refuses it without."""
    from cams.cli import main

    root, _ = files
    assert load_keras_model(root / "lambda.keras", unsafe=True).output_shape == (None, 2)
    assert main(["layers", "--model", str(root / "lambda.keras")]) == 2
    assert "pass --unsafe" in capsys.readouterr().err
    assert main(["layers", "--model", str(root / "lambda.keras"), "--unsafe"]) == 0
    assert "feat" in capsys.readouterr().out


def test_keras2_h5_model_loads_and_predicts_the_same(files):
    """file-model-keras2-h5: a legacy HDF5 file marked as written by Keras 2 loads and gives the same outputs."""
    root, model = files
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    loaded = load_keras_model(root / "legacy.h5")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def _png(path, array):
    assert cv2.imwrite(str(path), array)
    return path


def test_image_files(tmp_path):
    """file-image-*: what a careful user expects of each kind of image file."""
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), np.uint8)
    # file-image-16bit: scaled to 0..255 like 8-bit images (65535 -> 255)
    img16 = (rgb.astype(np.uint16) * 257)[..., ::-1]
    got = load_image(_png(tmp_path / "16.png", img16), (8, 8), 3, scale=1.0)
    np.testing.assert_array_equal(got, rgb.astype(np.float32))
    # file-image-alpha: the alpha channel is dropped, colours kept
    rgba = np.dstack([rgb[..., ::-1], np.full((8, 8), 7, np.uint8)])
    np.testing.assert_array_equal(load_image(_png(tmp_path / "a.png", rgba), (8, 8), 3, scale=1.0), rgb)
    # file-image-grey-for-rgb: the grey value in all three channels
    grey = rgb[..., 0]
    got = load_image(_png(tmp_path / "g.png", grey), (8, 8), 3, scale=1.0)
    np.testing.assert_array_equal(got, np.repeat(grey[..., None], 3, axis=-1))
    # file-image-rgb-for-grey: converted to luminance (OpenCV's 0.299 R + 0.587 G + 0.114 B)
    got = load_image(tmp_path / "a.png", (8, 8), 1, scale=1.0)[..., 0]
    np.testing.assert_allclose(got, rgb @ np.array([0.299, 0.587, 0.114]), atol=1)
    # file-image-other-size: resized to the model's size
    assert load_image(tmp_path / "g.png", (5, 3), 3).shape == (5, 3, 3)


def test_corrupt_and_truncated_images_are_named_and_skipped(tmp_path):
    """file-image-corrupt / file-image-truncated-png / file-image-truncated-jpeg: skipped with the reason."""
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)
    good = _png(tmp_path / "good.png", rgb)
    (tmp_path / "corrupt.png").write_bytes(b"not an image at all")
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    assert cv2.imwrite(str(tmp_path / "whole.jpg"), rgb)
    whole = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) * 3 // 4])  # OpenCV still decodes it, padded with grey
    paths = [good, tmp_path / "corrupt.png", tmp_path / "cut.png", tmp_path / "cut.jpg"]
    x, kept, skipped = load_images(paths, (32, 32), 3)
    assert kept == [good] and x.shape == (1, 32, 32, 3)
    reasons = dict(skipped)
    assert reasons[tmp_path / "corrupt.png"] == f"{tmp_path / 'corrupt.png'}: not a readable image"
    assert reasons[tmp_path / "cut.png"] == f"{tmp_path / 'cut.png'}: not a readable image"
    # OpenCV >= 4.10 refuses the cut JPEG; older ones decode it padded with grey, which images.py refuses
    assert re.fullmatch(re.escape(f"{tmp_path / 'cut.jpg'}: ") + r"(not a readable image|truncated JPEG \(no end-of-image marker\))",
                        reasons[tmp_path / "cut.jpg"])


@pytest.fixture(scope="module")
def lcam_file(files, tmp_path_factory):
    import cams

    root, model = files
    lcam = cams.LCAM(model, layer="feat")  # untrained weights: the file format is what is tested
    path = tmp_path_factory.mktemp("lcam") / "l.npz"
    lcam.save(path)
    return path


def test_bad_lcam_files(files, lcam_file, tmp_path):
    """file-lcam-other-classifier / file-lcam-truncated / file-lcam-edited."""
    import json

    import cams

    _, model = files
    other = conv_gap_dense(size=16, k=3, softmax=True, name="other")  # another classifier: 3 feature channels
    with pytest.raises(ValueError, match=re.escape(str(lcam_file)) + ".*"):
        cams.LCAM.load(lcam_file, other)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(lcam_file.read_bytes()[:100])
    with pytest.raises(ValueError, match=re.escape(f"{cut}: not an L-CAM file written by LCAM.save")):
        cams.LCAM.load(cut, model)
    with np.load(lcam_file) as z:
        arrays = dict(z)
    meta = json.loads(str(arrays["meta"]))
    meta["layer"] = "conv1_renamed"
    arrays["meta"] = np.array(json.dumps(meta))
    edited = tmp_path / "edited.npz"
    np.savez(edited, **arrays)
    with pytest.raises(ValueError, match=re.escape(f"{edited}: the L-CAM was trained on layer 'conv1_renamed'")):
        cams.LCAM.load(edited, model)


def test_every_case_is_in_the_table():
    table = DOC.read_text()
    ids = list(MODEL_CASES) + ["file-model-lambda-unsafe", "file-model-keras2-h5", "file-image-16bit", "file-image-alpha",
                               "file-image-grey-for-rgb", "file-image-rgb-for-grey", "file-image-other-size",
                               "file-image-corrupt", "file-image-truncated-png", "file-image-truncated-jpeg",
                               "file-lcam-other-classifier", "file-lcam-truncated", "file-lcam-edited"]
    assert [c for c in ids if f"`{c}`" not in table] == []
