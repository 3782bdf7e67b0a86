"""Load a saved Keras model with one readable error naming the file (shared by every command line)."""
from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_HINT = "expected a .keras file saved with model.save"


def check_model_file(path: str | os.PathLike, hint: str = DEFAULT_HINT) -> Path:
    """Fail early (no TensorFlow import) when `path` is not a file: ValueError '<path>: no such model file (hint)'."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such model file ({hint})")
    return path


def load_keras_model(path: str | os.PathLike, hint: str = DEFAULT_HINT, unsafe: bool = False):
    """keras.models.load_model(path, compile=False), any failure as one ValueError naming the file.

    Args:
        path: a .keras file (or a legacy Keras 2 / Keras 3 .h5 file).
        hint: how to get a model file, for the "no such model file" message.
        unsafe: let Keras deserialise Lambda layers (safe_mode=False): their Python code runs, so only
            for files you trust; by default they are refused with a message saying so.
    """
    import keras

    path = check_model_file(path, hint)
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the model file is empty (0 bytes); save the model again ({hint})")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as err:  # keras raises many types for corrupt or foreign files
        raise ValueError(f"{path}: {_why_not_loaded(err)}") from None


def _why_not_loaded(err: Exception) -> str:
    """One line saying why Keras could not load a model, with the fix where one is known."""
    text = str(err)
    if "Lambda" in text and "safe_mode" in text:
        return ("the model has a Lambda layer, whose Python code Keras refuses to load by default (it could run "
                "arbitrary code); if you trust this file, pass --unsafe (Python: load_keras_model(path, unsafe=True))")
    custom = re.search(r"Could not locate (?:class|function) '([^']+)'", text)
    if custom:
        return (f"the model uses the custom layer or function {custom.group(1)!r}, which is not registered here; "
                "import the module that defines it (decorated with @keras.saving.register_keras_serializable()) "
                "before loading")
    first = text.strip().splitlines()[0][:200] if text.strip() else ""
    return f"cannot load as a Keras model ({type(err).__name__}: {first})"
