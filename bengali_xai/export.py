"""Export a trained .keras model as a TensorFlow SavedModel that also explains (cams.export)."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import BengaliXAIError
from .explain import load_model


def export_savedmodel(model_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the model at `model_path` as a SavedModel folder `out`.

    `tf.saved_model.load(out).serve(images)` returns {"predictions", "probabilities", "class",
    "map"} (the Grad-CAM map of the top-1 class at the last convolution); see cams.export.
    Written atomically; an existing SavedModel at `out` is replaced, any other folder refused.
    """
    from cams.export import export_savedmodel as export

    model = load_model(model_path)
    try:
        return export(model, out, explain="gradcam")
    except ValueError as err:
        raise BengaliXAIError(str(err)) from None
