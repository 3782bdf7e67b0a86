"""deepfake_xai models: SimpleNet and XceptionBased layers, parameter counts, weights handling."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from cams.training import set_mixed_precision
from deepfake_xai.cli import main
from deepfake_xai.models import (WeightsError, build_model, cam_layer, describe_params, load_checkpoint,
                                 simplenet, trainable_params, xception_based)


def _conv(k, cin, cout):
    return k * k * cin * cout + cout


def _dense(n_in, n_out):
    return n_in * n_out + n_out


def _simplenet_params(size):
    s = size
    for _ in range(3):
        s = (s - 6) // 2
    return (_conv(7, 3, 6) + _conv(7, 6, 16) + _conv(7, 16, 24) + _dense(s * s * 24, 1024)
            + _dense(1024, 256) + _dense(256, 2))


@pytest.mark.parametrize("size", [64, 256])
def test_simplenet_layers_shapes_and_parameter_count(size):
    model = simplenet(size)
    names = [layer.name for layer in model.layers]
    for n in ("conv1", "conv2", "conv3", "fc1", "fc2", "fc3"):
        assert n in names
    assert [model.get_layer(f"conv{i}").filters for i in (1, 2, 3)] == [6, 16, 24]
    assert all(model.get_layer(f"conv{i}").kernel_size == (7, 7) for i in (1, 2, 3))
    assert [model.get_layer(f"fc{i}").units for i in (1, 2, 3)] == [1024, 256, 2]
    assert model.count_params() == _simplenet_params(size)
    assert f"{model.count_params():,}" in describe_params(model)
    if size == 64:
        out = model(np.zeros((3, size, size, 3), np.float32))
        assert out.shape == (3, 2)
    assert cam_layer(model) == "conv3"


def test_simplenet_rejects_too_small_input():
    with pytest.raises(ValueError, match="image-size >= 50"):
        simplenet(48)


def test_xception_based_head_and_counts():
    model = xception_based(71, weights=None)
    base = model.get_layer("xception")
    assert isinstance(base, keras.Model) and base.output_shape[-1] == 2048
    assert [model.get_layer(f"fc{i}").units for i in (1, 2, 3, 4)] == [1000, 256, 64, 2]
    head = _dense(2048, 1000) + _dense(1000, 256) + _dense(256, 64) + _dense(64, 2)
    assert model.count_params() - base.count_params() == head
    text = describe_params(model)
    assert f"{head:,}" in text and f"{head - _dense(2048, 1000):,}" in text  # the report: 272,834 added
    assert model(np.zeros((1, 71, 71, 3), np.float32)).shape == (1, 2)
    assert cam_layer(model) is None  # cams finds Xception's last conv inside the nested base
    with pytest.raises(ValueError, match=">= 71"):
        xception_based(64, weights=None)


def _fail_download(*args, **kwargs):
    if kwargs.get("weights") == "imagenet":
        raise Exception("URL fetch failure on https://storage.googleapis.com/x.h5: None -- "
                        "[Errno -3] Temporary failure in name resolution")
    raise AssertionError("only the imagenet path should reach here")


def test_imagenet_download_failure_is_one_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(keras.applications, "Xception", _fail_download)
    with pytest.raises(WeightsError) as info:
        build_model("XceptionBased", 71, "imagenet")
    msg = str(info.value)
    assert "ImageNet weights could not be downloaded" in msg and "--weights none" in msg and "--weights PATH" in msg
    # through the CLI: exit 2 and a single line (needs a data set to get that far)
    from deepfake_xai.make_dataset import generate_dataset

    generate_dataset(tmp_path, "d", 64, {"train": 3, "val": 3, "test": 3}, progress=False, log=lambda s: None)
    rc = main(["train", "-d", str(tmp_path / "d"), "-m", "XceptionBased", "--image-size", "71", "-e", "1",
               "--out-dir", str(tmp_path / "out"), "--checkpoint-dir", str(tmp_path / "ck")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2
    assert err[-1].startswith("deepfake-xai train: error: ImageNet weights could not be downloaded")
    assert not (tmp_path / "out").exists()


def test_weights_options(tmp_path):
    with pytest.raises(WeightsError, match="SimpleNet has no ImageNet weights"):
        build_model("SimpleNet", 64, "imagenet")
    with pytest.raises(WeightsError, match="not found"):
        build_model("XceptionBased", 71, str(tmp_path / "missing.h5"))
    with pytest.raises(ValueError, match="unknown model"):
        build_model("ResNet", 64)
    a = build_model("SimpleNet", 64, "none")
    path = tmp_path / "a.weights.h5"
    a.save_weights(path)
    b = build_model("SimpleNet", 64, str(path))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    with pytest.raises(WeightsError, match="PyTorch"):
        load_checkpoint(tmp_path / "fakes_dataset_SimpleNet_Adam.pt")


def test_mixed_precision_keeps_float32_logits():
    try:
        policy = set_mixed_precision(True)
        model = simplenet(64)
        assert model.get_layer("conv1").compute_dtype == policy.split("_")[1]
        out = model(np.zeros((2, 64, 64, 3), np.float32))
        assert out.dtype == "float32"
    finally:
        set_mixed_precision(False)


def test_xception_trainable_counts_are_the_reports():
    """The report's 22,855,952 (Xception with its fc) and 23,128,786 (with the MLP head) count trainable
    parameters only; Keras' totals add the BatchNorm moving statistics (54,528)."""
    model = xception_based(71, weights=None)
    base = model.get_layer("xception")
    head = _dense(2048, 1000) + _dense(1000, 256) + _dense(256, 64) + _dense(64, 2)
    bn_stats = sum(2 * l.moving_mean.shape[0] for l in base.layers if isinstance(l, keras.layers.BatchNormalization))
    assert base.count_params() - trainable_params(base) == bn_stats
    text = describe_params(model)
    assert f"backbone with its fc {trainable_params(base) + _dense(2048, 1000):,}" in text
    assert f"this model {trainable_params(base) + head:,}" in text

