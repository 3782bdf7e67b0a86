"""Export a trained .keras model as a TensorFlow SavedModel (for TF Serving / TFLite / TF.js)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import BengaliXAIError
from .explain import load_model


def export_savedmodel(model_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the model at `model_path` as a SavedModel folder `out` (serving endpoint "serve").

    The export goes to a temporary folder beside `out` and is moved into place at the end, so an
    interrupted export never leaves half a SavedModel. An existing SavedModel at `out` is replaced;
    any other non-empty folder is refused.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "saved_model.pb").is_file())):
        raise BengaliXAIError(f"{out} exists and is not a SavedModel folder; choose another --out")
    model = load_model(model_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.export(str(tmp / "sm"), format="tf_saved_model", verbose=False)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp / "sm", out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
