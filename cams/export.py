"""SavedModels that explain: one serving call returns predictions, probabilities and a CAM.

    cams.export.export_savedmodel(model, "exported/", explain="gradcam")
    loaded = tf.saved_model.load("exported/")
    out = loaded.serve(images)     # {"predictions", "probabilities", "class", "map"}

`predictions` is exactly what the Keras model returns; `probabilities` = softmax of the logits;
`map` is the explainer's float32 (N, H, W) map in [0, 1] for the top-1 class. The folder is
written beside `out` and moved into place at the end, so an interrupted export never leaves half
a SavedModel; an existing SavedModel at `out` is replaced, any other non-empty folder is refused.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import keras
import tensorflow as tf

from . import model_graph
from .files import atomic_savedmodel_dir

EXPLAINERS = ("gradcam", "gradcam++")


def _explainer(model, explain: str, layer):
    from .gradient_cams import GradCAM, GradCAMPlusPlus

    if explain not in EXPLAINERS:
        raise ValueError(f"explain must be one of {', '.join(EXPLAINERS)} or None, got {explain!r}")
    return (GradCAM if explain == "gradcam" else GradCAMPlusPlus)(model, layer=layer)


def export_savedmodel(model: keras.Model, out: str | os.PathLike, explain: Optional[str] = "gradcam", layer=None) -> Path:
    """Write `model` as a SavedModel at `out` with a `serve` endpoint (also the default signature)."""
    out = Path(out)
    _, h, w, c = model_graph.input_shape(model)
    explainer = _explainer(model, explain, layer) if explain else None

    def serve(images):
        images = tf.cast(images, tf.float32)
        _, logits = model_graph.forward(model, images)
        logits = tf.cast(logits, tf.float32)
        result = {
            "predictions": tf.cast(model(images, training=False), tf.float32),
            "probabilities": tf.nn.softmax(logits, axis=-1),
            "class": tf.argmax(logits, axis=-1, output_type=tf.int32),
        }
        if explainer is not None:
            top1 = tf.fill(tf.shape(images)[:1], tf.constant(-1, tf.int32))
            result["map"] = explainer._explain_and_postprocess(images, top1)
        return result

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve, input_signature=[tf.TensorSpec((None, h, w, c), tf.float32)])
    with atomic_savedmodel_dir(out) as tmp:
        archive.write_out(str(tmp), verbose=False)
    return out
