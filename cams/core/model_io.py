"""Load a saved Keras model with one readable error naming the file (shared by every command line)."""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HINT = "expected a .keras file saved with model.save"


def check_model_file(path: str | os.PathLike, hint: str = DEFAULT_HINT) -> Path:
    """Fail early (no TensorFlow import) when `path` is not a file: ValueError '<path>: no such model file (hint)'."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such model file ({hint})")
    return path


def load_keras_model(path: str | os.PathLike, hint: str = DEFAULT_HINT):
    """keras.models.load_model(path, compile=False), any failure as one ValueError naming the file."""
    import keras

    path = check_model_file(path, hint)
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as err:  # keras raises many types for corrupt or foreign files
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise ValueError(f"{path}: cannot load as a Keras model ({type(err).__name__}: {first})") from None
