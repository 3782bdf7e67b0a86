"""The L-CAM file: the attention weights and a description of the classifier, in one of two forms.

`.npz`: kernel (K, C) float32, bias (C,) float32, meta = JSON string:
    {"format": "cams.LCAM", "version": 1, "mode", "loss", "layer", "channels", "classes",
     "input_shape", "model_name", "model_fingerprint", "history", "settings"}
`.keras`: a Keras model (N, h, w, K) -> (N, h, w, C) holding the `Attention` layer, whose config
keeps the same JSON as its `description`; `keras.saving.load_model` opens it on its own.

The classifier itself is not stored; `check_model` refuses a classifier that lacks the layer, has
other shapes or classes, or (strict) other weights (sha256 fingerprint of its weights).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keras
import numpy as np

from cams.core import model_graph

FORMAT = "cams.LCAM"
FORMAT_VERSION = 1


def model_fingerprint(model) -> str:
    """sha256 over the classifier's weight shapes and values (float32): identifies the classifier."""
    h = hashlib.sha256()
    for w in model.weights:
        v = np.asarray(keras.ops.convert_to_numpy(w), dtype=np.float32)
        h.update(str(v.shape).encode())
        h.update(v.tobytes())
    return h.hexdigest()


def describe(model, layer_name: str, channels: int, mode: str, loss: str, history: dict, settings: dict,
             fingerprint: str | None = None) -> dict:
    """The `meta` record of an L-CAM trained on `model` at `layer_name`."""
    return {
        "format": FORMAT, "version": FORMAT_VERSION, "mode": mode, "loss": loss, "layer": layer_name,
        "channels": int(channels), "classes": int(model_graph.num_classes(model)),
        "input_shape": [None if d is None else int(d) for d in model_graph.input_shape(model)],
        "model_name": model.name, "model_fingerprint": fingerprint or model_fingerprint(model),
        "history": history, "settings": settings,
    }


def write(path, kernel: np.ndarray, bias: np.ndarray, meta: dict) -> Path:
    """Write the .npz atomically (cams.core.files.save_npz)."""
    from cams.core.files import save_npz

    return save_npz(path, kernel=np.asarray(kernel, np.float32), bias=np.asarray(bias, np.float32),
                    meta=np.array(json.dumps(meta)))


def write_keras(path, kernel: np.ndarray, bias: np.ndarray, meta: dict) -> Path:
    """Write the attention as a `.keras` model (atomically; cams.training.save_model_atomic's way)."""
    from cams.core.files import atomic_path
    from cams.methods.lcam.attention import Attention

    kernel = np.asarray(kernel, np.float32)
    features = keras.Input((None, None, kernel.shape[0]), name="features")
    layer = Attention(kernel.shape[0], kernel.shape[1], kernel, bias, description=json.dumps(meta), name="lcam_attention")
    with atomic_path(path, suffix=".keras") as tmp:
        keras.Model(features, layer(features), name="lcam").save(tmp)
    return Path(path)


def _read_keras(p: Path) -> tuple[dict, dict]:
    from cams.methods.lcam.attention import Attention

    model = keras.saving.load_model(p, compile=False)
    layer = next(layer for layer in model.layers if isinstance(layer, Attention))
    return json.loads(layer.description), {"kernel": layer.kernel.numpy(), "bias": layer.bias.numpy()}


def read(path) -> tuple[dict, dict]:
    """(meta, {"kernel", "bias"}) of an L-CAM file (.npz or .keras); ValueError naming the file if it is not one."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such L-CAM file")
    try:
        if p.suffix == ".keras":
            meta, arrays = _read_keras(p)
            if meta.get("format") != FORMAT:
                raise ValueError("no L-CAM description")
            return meta, arrays
        with np.load(p, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {"kernel": data["kernel"], "bias": data["bias"]}
    except Exception as err:  # zipfile / KeyError / json errors
        raise ValueError(f"{p}: not an L-CAM file written by LCAM.save ({type(err).__name__}: {err})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{p}: not an L-CAM file written by LCAM.save")
    return meta, arrays


def check_model(path, meta: dict, model, strict: bool = True):
    """The feature layer of `model` named in `meta`, after checking that `model` is the classifier
    the L-CAM was trained on (ValueError naming the file and the mismatch otherwise)."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model, got {type(model).__name__}")
    try:
        layer = model_graph.resolve_layer(model, meta["layer"])
    except ValueError as err:
        raise ValueError(f"{path}: the L-CAM was trained on layer {meta['layer']!r} of model "
                         f"{meta['model_name']!r}, which this model lacks ({err})") from None
    shape = [None if d is None else int(d) for d in model_graph.input_shape(model)]
    if shape != meta["input_shape"] or model_graph.num_classes(model) != meta["classes"]:
        raise ValueError(
            f"{path}: the L-CAM was trained for a model with input {tuple(meta['input_shape'])} and "
            f"{meta['classes']} classes; this model has input {tuple(shape)} and {model_graph.num_classes(model)} classes"
        )
    if strict and model_fingerprint(model) != meta["model_fingerprint"]:
        raise ValueError(
            f"{path}: this model's weights differ from those of the classifier the L-CAM was trained on "
            f"({meta['model_name']!r}); pass that classifier, or strict=False to use it anyway"
        )
    return layer
