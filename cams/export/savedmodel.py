"""SavedModels that explain: one serving call returns predictions, probabilities and a CAM.

    cams.export.export_savedmodel(model, "exported/", explain="gradcam")   # or an explainer object
    loaded = tf.saved_model.load("exported/")
    out = loaded.serve(images)                  # {"predictions", "probabilities", "class", "map"}
    out = loaded.explain(images, targets)       # the same for given classes (-1 = top-1)

`predictions` is exactly what the Keras model returns; `probabilities` = softmax of the logits;
`map` is the explainer's float32 (N, H, W) map in [0, 1]. `serve` is also the default signature
("serving_default"). The folder is written beside `out` and moved into place at the end, so an
interrupted export never leaves half a SavedModel; an existing SavedModel at `out` is replaced,
any other non-empty folder is refused.
"""
from __future__ import annotations

import os
from pathlib import Path

import keras
import tensorflow as tf

from cams.core import model_graph
from cams.core.files import atomic_savedmodel_dir


def exportable_methods() -> list:
    """Registered methods whose whole map is one TensorFlow graph (so a SavedModel can serve it)."""
    from cams.methods import registry

    return [n for n, m in registry.methods().items() if m.exportable and not m.trained_file]


def _explainer(model, explain, layer):
    from cams.methods import registry

    if not isinstance(explain, str):
        if not getattr(explain, "exportable", False) or getattr(explain, "model", None) is not model:
            raise ValueError("explain must be an exportable explainer built on this model, or a method name")
        return explain
    if explain not in exportable_methods():
        raise ValueError(f"explain must be one of {', '.join(exportable_methods())} or None, got {explain!r}")
    return registry.make_explainer(explain, model, layer=layer)


class _Served(tf.Module):
    """The model, the explainer's own variables (L-CAM's attention) and the two endpoints."""

    def __init__(self, model, explainer):
        super().__init__()
        self.model, self.explainer_variables = model, list(getattr(explainer, "variables", ()))
        self._keras_model, self._explainer = model, explainer

    def outputs(self, images, targets):
        images = tf.cast(images, tf.float32)
        _, logits = model_graph.forward(self._keras_model, images)
        logits = tf.cast(logits, tf.float32)
        result = {
            "predictions": tf.cast(self._keras_model(images, training=False), tf.float32),
            "probabilities": tf.nn.softmax(logits, axis=-1),
            "class": tf.argmax(logits, axis=-1, output_type=tf.int32),
        }
        if self._explainer is not None:
            result["map"] = self._explainer.explain_tensor(images, targets)
        return result


def export_savedmodel(model: keras.Model, out: str | os.PathLike, explain="gradcam", layer=None) -> Path:
    """Write `model` as a SavedModel at `out` with `serve` (default signature) and `explain` endpoints.

    Args:
        model: the Keras classifier.
        out: the SavedModel folder (replaced if it holds a SavedModel; any other non-empty folder is refused).
        explain: a method name from `exportable_methods()`, an exportable explainer object built on
            `model` (e.g. a trained `cams.LCAM`), or None for predictions only.
        layer: the feature layer when `explain` is a name.

    Returns:
        The folder's path.
    """
    out = Path(out)
    _, h, w, c = model_graph.input_shape(model)
    served = _Served(model, _explainer(model, explain, layer) if explain is not None else None)
    images_spec = tf.TensorSpec((None, h, w, c), tf.float32, name="images")
    serve = tf.function(lambda images: served.outputs(images, tf.fill(tf.shape(images)[:1], -1)),
                        input_signature=[images_spec])
    explain_fn = tf.function(lambda images, targets: served.outputs(images, targets),
                             input_signature=[images_spec, tf.TensorSpec((None,), tf.int32, name="targets")])
    served.serve, served.explain = serve, explain_fn
    with atomic_savedmodel_dir(out) as tmp:
        tf.saved_model.save(served, str(tmp), signatures={"serving_default": serve.get_concrete_function(),
                                                          "explain": explain_fn.get_concrete_function()})
    return out
