"""The study's two detectors: SimpleNet and the Xception transfer model (logits out, 2 classes)."""
from __future__ import annotations

import os
from pathlib import Path

import keras
from keras import layers

MODELS = ("SimpleNet", "XceptionBased")
SIMPLENET_MIN_SIZE = 50   # three unpadded 7x7 convs, each followed by a 2x2 max-pool
XCEPTION_MIN_SIZE = 71    # keras.applications.Xception's own minimum


class WeightsError(RuntimeError):
    """Pretrained weights could not be obtained or do not fit the model."""


def simplenet(input_size: int = 256, name: str = "SimpleNet") -> keras.Model:
    """conv1 Conv2D(6,7) -> conv2 Conv2D(16,7) -> conv3 Conv2D(24,7) (ReLU + MaxPool(2) each),
    Flatten -> fc1 Dense(1024) -> fc2 Dense(256) -> fc3 Dense(2) logits."""
    if input_size < SIMPLENET_MIN_SIZE:
        raise ValueError(f"SimpleNet needs --image-size >= {SIMPLENET_MIN_SIZE} (three unpadded 7x7 "
                         f"convolutions and 2x2 poolings), got {input_size}")
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = inputs
    for i, filters in enumerate((6, 16, 24), start=1):
        x = layers.Conv2D(filters, 7, activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(1024, activation="relu", name="fc1")(x)
    x = layers.Dense(256, activation="relu", name="fc2")(x)
    outputs = layers.Dense(2, name="fc3", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def _xception_base(input_size: int, weights: str | None) -> keras.Model:
    kwargs = dict(include_top=False, pooling="avg", input_shape=(input_size, input_size, 3))
    if weights != "imagenet":
        return keras.applications.Xception(weights=weights, **kwargs)
    try:
        return keras.applications.Xception(weights="imagenet", **kwargs)
    except Exception as exc:  # keras.utils.get_file raises a bare Exception on URL failures
        text = str(exc)
        if "URL fetch failure" in text or isinstance(exc, OSError) or "urlopen" in text.lower():
            reason = text.splitlines()[0][:160]
            raise WeightsError(
                f"ImageNet weights could not be downloaded ({reason}): run with network access, "
                f"pass --weights PATH to a local .h5, or --weights none") from None
        raise


def xception_based(input_size: int = 256, weights: str | None = "imagenet",
                   name: str = "XceptionBased") -> keras.Model:
    """Xception backbone (include_top=False, global average pooling, 2048 features) + MLP head
    fc1 Dense(1000) -> fc2 Dense(256) -> fc3 Dense(64) -> fc4 Dense(2) logits, ReLU between.

    weights: "imagenet", None, or a path to an Xception .h5 weights file (no top) for the backbone.
    """
    if input_size < XCEPTION_MIN_SIZE:
        raise ValueError(f"XceptionBased needs --image-size >= {XCEPTION_MIN_SIZE}, got {input_size}")
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise WeightsError(f"weights file not found: {weights}")
    base = _xception_base(input_size, weights)
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = base(inputs)
    for i, units in enumerate((1000, 256, 64), start=1):
        x = layers.Dense(units, activation="relu", name=f"fc{i}")(x)
    outputs = layers.Dense(2, name="fc4", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def build_model(name: str, input_size: int = 256, weights: str | None = None) -> keras.Model:
    """Build `SimpleNet` or `XceptionBased`.

    weights: "none"/None (random init), "imagenet" (XceptionBased only), or PATH: for XceptionBased an
    Xception backbone .h5, for SimpleNet a `.weights.h5` / `.keras` file of the whole model.
    """
    if weights in ("none", "None", ""):
        weights = None
    if name == "SimpleNet":
        if weights == "imagenet":
            raise WeightsError("SimpleNet has no ImageNet weights: use --weights none or --weights PATH")
        model = simplenet(input_size)
        if weights is not None:
            load_weights_file(model, weights)
        return model
    if name == "XceptionBased":
        return xception_based(input_size, weights)
    raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")


def load_weights_file(model: keras.Model, path: str | os.PathLike) -> None:
    """Load weights of the whole model from a `.weights.h5` or a saved `.keras` model."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        if path.suffix == ".keras":
            model.set_weights(keras.models.load_model(path, compile=False).get_weights())
        else:
            model.load_weights(path)
    except Exception as exc:
        raise WeightsError(f"cannot load {path} into {model.name}: {str(exc).splitlines()[0][:200]}") from None


def count_params(model: keras.Model) -> int:
    """Number of parameters (the report's get_nof_parameters)."""
    return int(model.count_params())


def trainable_params(model: keras.Model) -> int:
    """Number of trainable parameters (what PyTorch's sum of p.numel() over parameters() counts)."""
    return int(sum(int(keras.ops.size(w)) for w in model.trainable_weights))


def describe_params(model: keras.Model) -> str:
    """Parameter counts as the report gives them (the backbone, and what the new head adds)."""
    total = count_params(model)
    lines = [f"{model.name}: {total:,} parameters"]
    base = next((l for l in model.layers if isinstance(l, keras.Model)), None)
    if base is not None:
        n_base = count_params(base)
        head = total - n_base
        original_fc = 2048 * 1000 + 1000  # Xception's own 1000-class fc that the MLP replaces
        lines.append(f"  Xception backbone (no top): {n_base:,}; with its 1000-class fc: {n_base + original_fc:,}")
        lines.append(f"  MLP head 2048-1000-256-64-2: {head:,} (adds {head - original_fc:,} over the original fc)")
        n_train, n_base_train = trainable_params(model), trainable_params(base)
        lines.append(f"  trainable only (PyTorch's count: BatchNorm moving mean/variance, {n_base - n_base_train:,} "
                     f"here, are buffers there): backbone with its fc {n_base_train + original_fc:,}; "
                     f"this model {n_train:,}")
    return "\n".join(lines)


def cam_layer(model: keras.Model) -> str | None:
    """Grad-CAM target layer: conv3 for SimpleNet, None (= last 4-D layer, Xception's last conv) else."""
    names = {l.name for l in model.layers}
    return "conv3" if "conv3" in names else None


def load_checkpoint(path: str | os.PathLike) -> keras.Model:
    """Load a `.keras` checkpoint written by `deepfake-xai train`, with a clear error otherwise."""
    path = Path(path)
    if path.suffix in (".pt", ".pth"):
        raise WeightsError(f"{path} is a PyTorch checkpoint; train with `deepfake-xai train` to get "
                           f"a Keras checkpoint under checkpoints/ (…/<dataset>_<model>_<optimizer>.keras)")
    from cams.core.model_io import load_keras_model

    try:
        return load_keras_model(path, "train first with `deepfake-xai train`, or pass -cpp PATH")
    except ValueError as exc:
        raise WeightsError(str(exc)) from None
