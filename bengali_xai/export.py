"""Export a trained .keras model as a TensorFlow SavedModel that also explains (cams.export)."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import BengaliXAIError
from .explain import load_model

JOB = "export"
COMMAND = "bengali-xai export"


def check_export_folder(out: str | os.PathLike, model_path: str | os.PathLike):
    """Refuse, before any work, an --out that overlaps --model or holds anything this command did not write.

    An existing --out is replaced only when it is a SavedModel exported here earlier: its run manifest
    lists every entry in it.

    Args:
        out: the SavedModel folder to write.
        model_path: the .keras model (--model).

    Returns:
        The OutputFolder of the earlier export (cams.core.outputs), or of a new one.

    Raises:
        ValueError: one line naming the path in the way and the fix.
    """
    from cams.core.outputs import OutputFolder, check_apart

    check_apart(out, {"--model": [model_path]})
    folder = OutputFolder(out, JOB, COMMAND, {"model": str(model_path)})
    entries = sorted(os.listdir(out)) if Path(out).is_dir() else []
    if entries and folder.previous is None:
        raise ValueError(f"{out} exists and was not written by {COMMAND}; choose another --out")
    others = [e for e in entries if e != folder.manifest_path.name and not folder.owns(e)]
    if others:
        raise ValueError(f"{Path(out) / others[0]} was not written by {COMMAND}; move it out of {out} or "
                         f"choose another --out")
    return folder


def export_savedmodel(model_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the model at `model_path` as a SavedModel folder `out`.

    `tf.saved_model.load(out).serve(images)` returns {"predictions", "probabilities", "class",
    "map"} (the Grad-CAM map of the top-1 class at the last convolution); see cams.export.
    Written atomically; an existing folder is replaced only when it is a SavedModel this command
    wrote (its run manifest lists all it holds), anything else is refused before the model is loaded.

    Args:
        model_path: the .keras model.
        out: the SavedModel folder.

    Returns:
        The folder's path.
    """
    from cams.core.outputs import OutputFolder
    from cams.export import export_savedmodel as export

    check_export_folder(out, model_path)
    model = load_model(model_path)
    try:
        path = export(model, out, explain="gradcam")
    except ValueError as err:
        raise BengaliXAIError(str(err)) from None
    done = OutputFolder(path, JOB, COMMAND, {"model": str(model_path)})
    done.record(*sorted(e for e in os.listdir(path) if e != done.manifest_path.name))
    return path
