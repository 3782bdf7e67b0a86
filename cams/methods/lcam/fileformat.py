"""The L-CAM file: one .npz with the attention weights and a description of the classifier.

    kernel (K, C) float32, bias (C,) float32, meta = JSON string:
    {"format": "cams.LCAM", "version": 1, "mode", "loss", "layer", "channels", "classes",
     "input_shape", "model_name", "model_fingerprint", "history", "settings"}

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


def read(path) -> tuple[dict, dict]:
    """(meta, {"kernel", "bias"}) of an L-CAM file; ValueError naming the file if it is not one."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such L-CAM file")
    try:
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
